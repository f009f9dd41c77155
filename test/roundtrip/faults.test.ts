// Fault injection (src/faults.ts): cr fails, or SIGKILLs itself, at every
// named step of a dump and of a restore of a process tree (a ring of four
// processes passing a token through pipes, checking each other), and the
// tree must be where the step says:
// - a dump cut before its point of no return (the manifest written): the
//   tree runs on, untraced, and no image set is left; after it: the images
//   are complete and kept (a restore from them works);
// - a restore cut before the go: nothing of the tree is left, the images
//   restore later; after the go: the whole tree runs.
import { afterEach, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DUMP_STEPS, RESTORE_STEPS } from "../../src/faults.ts";
import {
  alive, cleanup, CR, cr, dumpedPids, expectNothingRestored, expectRunsOnAndPasses, procState, readProgress, startWorkload, tempDir,
  track, tracerOf, waitDumpedGone, waitFor, waitGone, type Workload,
} from "../helpers/procs.ts";

afterEach(cleanup);

function crFault(args: string[], fault: string) {
  return spawnSync(CR, args, { encoding: "utf8", env: { ...process.env, CR_TEST_FAULT: fault }, timeout: 60_000 });
}

function startRing(): { w: Workload; pids: number[] } {
  const w = startWorkload("ring", ["4"]);
  const pids = readFileSync(join(w.dir, "pids"), "utf8").trim().split(/\s+/).map(Number);
  pids.forEach(track);
  waitFor(() => readProgress(w.dir) >= 3, 10_000, "the ring to go round");
  return { w, pids };
}

/** Every task of the tree runs, untraced and not stopped, and the ring goes on and passes its checks. */
function expectTreeRuns(w: Workload, pids: number[]): void {
  for (const p of pids) {
    waitFor(() => tracerOf(p) === 0, 5_000, `pid ${p} to be untraced`);
    expect({ pid: p, state: procState(p) }).toEqual({ pid: p, state: expect.stringMatching(/^[RSD]$/) });
  }
  expectRunsOnAndPasses(w);
}

/** How cr ended: the injected failure's one line, or the SIGKILL it gave itself. */
function expectCutShort(r: ReturnType<typeof crFault>, step: string, mode: string): void {
  if (mode === "kill") {
    expect(r.signal).toBe("SIGKILL");
  } else {
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(`injected failure at ${step}`);
  }
}

const verified = (images: string) => cr(["show", "--verify", images]).status === 0;

/** The images restore (every dumped pid free first) and the ring passes. */
function expectImagesRestore(w: Workload, images: string): void {
  waitDumpedGone(images);
  const r = cr(["restore", "-D", images, "-d"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  expectRunsOnAndPasses(w);
}

describe("dump cut short at each step", () => {
  const noReturn = DUMP_STEPS.indexOf("dump:manifest");
  for (const [i, step] of DUMP_STEPS.entries()) {
    for (const mode of ["fail", "kill"] as const) {
      test(`${step} (${mode})`, () => {
        const { w, pids } = startRing();
        const images = tempDir("cr-images-");
        const r = crFault(["dump", "-t", String(w.pid), "-D", images], `${step}:${mode}`);
        expectCutShort(r, step, mode);
        if (i < noReturn) {
          // No image set, the tree as it was.
          expect(existsSync(join(images, "manifest.cbor"))).toBe(false);
          expectTreeRuns(w, pids);
          return;
        }
        // Past the point of no return: the images are whole and stay.
        expect(verified(images)).toBe(true);
        expect(dumpedPids(images).sort()).toEqual([...pids].sort());
        if (mode === "fail") expect(r.stderr).toContain(`the images in ${images} are complete`);
        if (step === "dump:manifest") {
          // Cut before the tree was killed: it runs on.
          expectTreeRuns(w, pids);
        } else {
          // Cut after: the tree is gone, its images bring it back.
          for (const p of pids) waitGone(p);
          expectImagesRestore(w, images);
        }
      }, 30_000);
    }
  }
});

describe("restore cut short at each step", () => {
  const go = RESTORE_STEPS.indexOf("restore:go");
  for (const [i, step] of RESTORE_STEPS.entries()) {
    for (const mode of ["fail", "kill"] as const) {
      test(`${step} (${mode})`, () => {
        const { w, pids } = startRing();
        const images = tempDir("cr-images-");
        const d = cr(["dump", "-t", String(w.pid), "-D", images]);
        expect(d.stderr).toBe("");
        expect(d.status).toBe(0);
        waitDumpedGone(images);
        const r = crFault(["restore", "-D", images, "-d"], `${step}:${mode}`);
        expectCutShort(r, step, mode);
        // A failure at the go still removes the tree: no thread has run its own code yet.
        const nothing = i < go || (i === go && mode === "fail");
        if (nothing) {
          // Tasks that lost cr before the go kill themselves: wait for them (we reap them).
          for (const p of pids) waitGone(p);
          expectNothingRestored(images, pids);
          expect(verified(images)).toBe(true);
          expectImagesRestore(w, images);
          return;
        }
        for (const p of pids) expect({ pid: p, alive: alive(p) }).toEqual({ pid: p, alive: true });
        expectTreeRuns(w, pids);
      }, 30_000);
    }
  }
});

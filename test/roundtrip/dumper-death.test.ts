// cr killed (SIGKILL: the OOM killer, an operator's kill -9) at a random
// moment. Of a `dump -R`: whatever it was doing, every task goes on running,
// untraced and not stopped, with its memory, registers, signal masks,
// altstacks and vector state as they were (lib/inject.zig: every thread cr
// touches has a way back of its own). The workloads check all of that
// themselves, trial after trial, on the same process. Of a restore: the
// whole tree runs, or nothing of it is left.
import { afterEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import {
  alive, cleanup, CR, cr, procState, readProgress, readResult, sleepMs, startWorkload, stopWorkload, tempDir, track, tracerOf, waitDumpedGone,
  waitFor, waitGone, type Workload,
} from "../helpers/procs.ts";

afterEach(cleanup);

/** A fixed-seed generator: the moments are random, and the same on every run. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const count = (dir: string) => {
  try {
    return readdirSync(dir).length;
  } catch {
    return -1;
  }
};
const mappings = (pid: number) => readFileSync(`/proc/${pid}/maps`, "utf8").trim().split("\n").length;

/**
 * `trials` dumps of `w` with -R, each SIGKILLed `ms()` milliseconds after it
 * started; after each, the task must be untraced, running and progressing.
 * Returns how many were killed before they finished.
 */
async function killDumps(w: Workload, trials: number, ms: () => number): Promise<{ killed: number; fdsLeft: number; mapsLeft: number }> {
  const fds0 = count(`/proc/${w.pid}/fd`), maps0 = mappings(w.pid);
  let killed = 0;
  for (let i = 0; i < trials; i++) {
    const images = tempDir("cr-images-");
    const dump = Bun.spawn([CR, "dump", "-R", "--no-sync", "-t", String(w.pid), "-D", images], { stdout: "ignore", stderr: "ignore" });
    sleepMs(ms());
    dump.kill("SIGKILL");
    const code = await dump.exited;
    if (code !== 0) killed++;
    // The kernel lets go of every thread when cr dies.
    waitFor(() => tracerOf(w.pid) === 0, 5_000, `trial ${i}: the task to be untraced`);
    const state = procState(w.pid);
    if (!alive(w.pid) || state === "t" || state === "T") throw new Error(`trial ${i}: the task is ${state ?? "gone"} (${readResult(w.dir)})`);
    const at = readProgress(w.dir);
    waitFor(() => readProgress(w.dir) >= at + 2 || readResult(w.dir) !== null, 10_000, `trial ${i}: progress`);
    expect(readResult(w.dir)).toBeNull();
  }
  return { killed, fdsLeft: count(`/proc/${w.pid}/fd`) - fds0, mapsLeft: mappings(w.pid) - maps0 };
}

describe("the dumper killed at a random moment", () => {
  const cases = [
    // 256 MiB: the dump (cr started, frozen, pages sent, cured, let go) takes ~300-400 ms here, most of it in the page parasite.
    { name: "pattern", args: ["256"], trials: 50, spreadMs: 500 },
    // Registers, vector state and masks in nine threads, each asked by injected syscalls.
    { name: "threads", args: [], trials: 30, spreadMs: 60 },
    // Every ymm register live across the freeze.
    { name: "avx", args: [], trials: 20, spreadMs: 40 },
  ];
  for (const c of cases) {
    test(`${c.name}: ${c.trials} dumps killed within ${c.spreadMs} ms, the process unharmed after each`, async () => {
      const w = startWorkload(c.name, c.args);
      waitFor(() => readProgress(w.dir) >= 3, 30_000, "progress before the dumps");
      const rnd = lcg(c.trials * 7919 + c.spreadMs);
      const r = await killDumps(w, c.trials, () => rnd() * c.spreadMs);
      console.log(`${c.name}: ${r.killed} of ${c.trials} dumps killed before they finished; ` +
        `${r.fdsLeft} fd(s) and ${r.mapsLeft} mapping(s) more than before in the task`);
      // Most trials must really cut a dump short, or this proves little.
      expect(r.killed).toBeGreaterThanOrEqual(Math.floor(c.trials / 2));
      expect(stopWorkload(w)).toStartWith("PASS");
    }, 120_000);
  }
});

describe("the restorer killed at a random moment", () => {
  test("a ring of 4: 20 restores SIGKILLed within 80 ms, each leaves the whole tree or nothing", async () => {
    const w = startWorkload("ring", ["4"]);
    const pids = readFileSync(`${w.dir}/pids`, "utf8").trim().split(/\s+/).map(Number);
    pids.forEach(track);
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "the ring to go round");
    const images = tempDir("cr-images-");
    expect(cr(["dump", "-t", String(w.pid), "-D", images]).status).toBe(0);
    waitDumpedGone(images);
    const rnd = lcg(4242);
    let whole = 0, none = 0;
    for (let i = 0; i < 20; i++) {
      const restore = Bun.spawn([CR, "restore", "-D", images, "-d"], { stdout: "ignore", stderr: "ignore" });
      sleepMs(rnd() * 80);
      restore.kill("SIGKILL");
      await restore.exited;
      // Tasks that lost cr before the go kill themselves; give them the time.
      waitFor(() => pids.every((p) => procState(p) === null || procState(p) === "Z" || tracerOf(p) === 0), 5_000, `trial ${i}: settled`);
      sleepMs(100);
      const up = pids.filter((p) => alive(p));
      if (up.length === 0) {
        none++;
        for (const p of pids) waitGone(p);
        continue;
      }
      // Not a part of the tree: all of it, running its own code, passing its checks.
      expect({ trial: i, up: up.length }).toEqual({ trial: i, up: pids.length });
      const at = readProgress(w.dir);
      waitFor(() => readProgress(w.dir) >= at + 2, 10_000, `trial ${i}: the restored ring to go round`);
      expect(readResult(w.dir)).toBeNull();
      whole++;
      for (const p of [...pids].reverse()) process.kill(p, "SIGKILL");
      for (const p of pids) waitGone(p);
    }
    console.log(`restores killed: ${whole} left the whole tree running, ${none} left nothing, none a part`);
    // Both outcomes happen, or the moments do not cover the restore.
    expect(whole).toBeGreaterThan(0);
    expect(none).toBeGreaterThan(0);
  }, 120_000);
});

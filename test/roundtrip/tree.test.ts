// Round trips of process trees: every task of the tree is dumped (and
// killed), every pid is waited free, the tree is restored, and the workloads
// themselves check that pids, parents, sessions, groups, pipes (with the data
// sitting in them), shared file offsets and zombies survived.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  alive, cleanup, expectRunsOnAndPasses, cr, dumpedPids, procState, waitDumpedGone, readProgress, startWorkload, tempDir, track, waitFor, waitGone,
} from "../helpers/procs.ts";

afterEach(cleanup);

/** The tree's pids as the workload wrote them (root first). */
function treePids(dir: string): number[] {
  return readFileSync(join(dir, "pids"), "utf8").trim().split(/\s+/).map(Number);
}

function idsOf(pid: number): { ppid: number; pgid: number; sid: number } {
  const s = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return { ppid: Number(f[1]), pgid: Number(f[2]), sid: Number(f[3]) };
}

function treeRoundTrip(name: string, args: string[] = []): void {
  const w = startWorkload(name, args);
  const pids = treePids(w.dir);
  pids.forEach(track);
  waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
  const before = new Map(pids.map((p) => [p, { state: procState(p), ...idsOf(p) }]));
  const images = tempDir("cr-images-");
  const d = cr(["dump", "-t", String(w.pid), "-D", images]);
  expect(d.stderr).toBe("");
  expect(d.status).toBe(0);
  expect(dumpedPids(images).sort()).toEqual([...pids].sort());
  waitDumpedGone(images);
  const r = cr(["restore", "-D", images, "-d"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  for (const p of pids) {
    const b = before.get(p)!;
    // Every task is back at its pid, in its state, under its parent (the
    // root's parent is whoever restored it), in its group and session.
    const state = procState(p);
    expect({ pid: p, exists: state !== null, zombie: state === "Z" }).toEqual({ pid: p, exists: true, zombie: b.state === "Z" });
    const now = idsOf(p);
    if (p !== w.pid) expect({ pid: p, ppid: now.ppid }).toEqual({ pid: p, ppid: b.ppid });
    expect({ pid: p, pgid: now.pgid, sid: now.sid }).toEqual({ pid: p, pgid: b.pgid, sid: b.sid });
  }
  expectRunsOnAndPasses(w);
  for (const p of pids) expect(alive(p)).toBe(false);
}

describe("process tree round trip", () => {
  test("a ring of 4 processes passing a token through pipes", () => treeRoundTrip("ring", ["4"]));
  test("a ring of 12 processes", () => treeRoundTrip("ring", ["12"]));
  test("64 KiB left unread in a 1 MiB pipe", () => treeRoundTrip("pipebuf"));
  test("a zombie child keeps its exit status for its parent", () => treeRoundTrip("zombie"));
  test("sessions and process groups (own session, group with a grandchild)", () => treeRoundTrip("sessions"));
  test("two processes writing through one shared file description", () => treeRoundTrip("dupfd"));
  test("a parent and 3 children counting in shared anonymous memory, private COW pages apart", () => treeRoundTrip("shmcount", ["3"]));

  test("children keep their parent-death signal: killing the restored root takes them along", () => {
    // Every child of the ring sets PR_SET_PDEATHSIG(SIGKILL) (common.h, wl_child_init).
    const w = startWorkload("ring", ["4"]);
    const pids = treePids(w.dir);
    pids.forEach(track);
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const images = tempDir("cr-images-");
    expect(cr(["dump", "-t", String(w.pid), "-D", images]).status).toBe(0);
    waitDumpedGone(images);
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const at = readProgress(w.dir);
    waitFor(() => readProgress(w.dir) >= at + 3, 10_000, "progress after restore");
    process.kill(w.pid, "SIGKILL");
    for (const p of pids.slice(1)) waitFor(() => !alive(p), 5_000, `child ${p} to die with its parent`);
  });

  test("no task of a restored tree keeps the restorer's area, not even a child forked right away", () => {
    const dir = tempDir("cr-fork-");
    // Forks a child (no exec: it keeps a copy of the parent's mappings) every 5 ms.
    const script = [
      "import os, time",
      "while True:",
      "    if os.fork() == 0:",
      "        time.sleep(0.5)",
      "        os._exit(0)",
      "    while os.waitpid(-1, os.WNOHANG)[0] > 0: pass",
      "    time.sleep(0.005)",
    ].join("\n");
    const py = Bun.spawn(["python3", "-c", script], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
    track(py.pid);
    const children = () => {
      try {
        return readFileSync(`/proc/${py.pid}/task/${py.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
      } catch {
        return [];
      }
    };
    waitFor(() => children().length >= 3, 10_000, "python forking");
    const images = tempDir("cr-images-");
    expect(cr(["dump", "-t", String(py.pid), "-D", images]).status).toBe(0);
    waitDumpedGone(images);
    const r = cr(["restore", "-D", images, "-d", "-v"]);
    expect(r.status).toBe(0);
    const hole = /restorer hole at 0x([0-9a-f]+)/.exec(r.stderr)?.[1];
    expect(hole).toBeDefined();
    const holeAt = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/maps`, "utf8").split("\n").some((l) => l.startsWith(`${hole}-`));
      } catch {
        return false; // gone
      }
    };
    const seen = new Set<number>();
    const end = Date.now() + 300;
    while (Date.now() < end) {
      for (const pid of [py.pid, ...children()]) {
        seen.add(pid);
        expect({ pid, holeMapped: holeAt(pid) }).toEqual({ pid, holeMapped: false });
      }
    }
    // Dumped children and new ones both looked at.
    expect(seen.size).toBeGreaterThan(dumpedPids(images).length);
  });

  test("a bash loop that forks and execs all the time continues its count", () => {
    const dir = tempDir("cr-bash-");
    const log = join(dir, "count.log");
    const sh = Bun.spawn(["bash", "-c", `n=0; while :; do n=$((n+1)); echo $n >> "${log}"; sleep 0.02; done`], {
      stdio: ["ignore", "ignore", "ignore"], cwd: dir,
    });
    track(sh.pid);
    const count = () => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").length : 0);
    waitFor(() => count() >= 5, 10_000, "bash counting");
    const images = tempDir("cr-images-");
    const d = cr(["dump", "-t", String(sh.pid), "-D", images]);
    expect(d.stderr).toBe("");
    expect(d.status).toBe(0);
    const atDump = count();
    expect(dumpedPids(images)).toContain(sh.pid);
    waitDumpedGone(images);
    Bun.sleepSync(100);
    expect(count()).toBe(atDump);
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    waitFor(() => count() >= atDump + 10, 10_000, "bash counting after restore");
    process.kill(sh.pid, "SIGKILL");
    waitGone(sh.pid);
    const nums = readFileSync(log, "utf8").trim().split("\n").map(Number);
    nums.forEach((n, i) => expect(n).toBe(i + 1));
  });
});

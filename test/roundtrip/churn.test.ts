// Trees that change while they are being frozen: processes that fork and
// exit, threads that start and end, all the time. Every dump must either
// succeed or fail with one clear line, and either way (with
// --leave-running) leave every task running, untraced, with nothing lost;
// the last dump must restore.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { alive, cleanup, cr, tempDir, tracerOf, track, waitDumpedGone, waitFor } from "../helpers/procs.ts";

afterEach(cleanup);

/** Every task and thread under `pid` now (those that exit meanwhile are skipped). */
function treeTids(pid: number): number[] {
  const out: number[] = [];
  const visit = (p: number) => {
    let tids: number[];
    try {
      tids = readdirSync(`/proc/${p}/task`).map(Number);
    } catch {
      return;
    }
    out.push(...tids);
    for (const t of tids) {
      try {
        readFileSync(`/proc/${p}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number).forEach(visit);
      } catch {
        // Exited.
      }
    }
  };
  visit(pid);
  return out;
}

function numbers(path: string): number[] {
  return readFileSync(path, "utf8").trim().split("\n").map(Number);
}

/**
 * Dump `pid` with -R `rounds` times while it churns: each dump succeeds or
 * fails with a single line; after each, no task is traced and `count()` keeps
 * going. Returns how many dumps succeeded.
 */
function dumpWhileChurning(pid: number, rounds: number, count: () => number): number {
  let ok = 0;
  for (let i = 0; i < rounds; i++) {
    const r = cr(["dump", "-t", String(pid), "-D", tempDir("cr-images-"), "-R"]);
    if (r.status === 0) {
      expect(r.stderr).toBe("");
      ok++;
    } else {
      expect(r.stderr.trim().split("\n").length).toBe(1);
      expect(r.stderr).toStartWith("cr: ");
    }
    expect(alive(pid)).toBe(true);
    for (const t of treeTids(pid)) expect({ tid: t, tracer: tracerOf(t) }).toEqual({ tid: t, tracer: 0 });
    const at = count();
    waitFor(() => count() >= at + 3, 10_000, `progress after dump ${i + 1}`);
  }
  return ok;
}

/** A real dump (the tree is killed) and restore: the count in `log` goes on with no gap. */
function dumpAndRestore(pid: number, log: string): void {
  const images = tempDir("cr-images-");
  const d = cr(["dump", "-t", String(pid), "-D", images]);
  expect(d.stderr).toBe("");
  expect(d.status).toBe(0);
  waitDumpedGone(images);
  const before = numbers(log).length;
  const r = cr(["restore", "-D", images, "-d"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  waitFor(() => numbers(log).length >= before + 20, 10_000, "the restored tree counting");
  numbers(log).forEach((n, i) => expect(n).toBe(i + 1));
}

describe("trees that change during the dump", () => {
  test("a shell forking and reaping children all the time: dumps are consistent, the count has no gap", () => {
    const dir = tempDir("cr-churn-");
    const log = join(dir, "count.log");
    const sh = Bun.spawn(["bash", "-c", `n=0; while :; do /bin/true & /bin/true & (exit 3) & wait; n=$((n+1)); echo $n >> "${log}"; done`], {
      stdio: ["ignore", "ignore", "ignore"], cwd: dir,
    });
    track(sh.pid);
    waitFor(() => existsSync(log), 10_000, "the shell to count");
    const count = () => numbers(log).length;
    expect(dumpWhileChurning(sh.pid, 8, count)).toBeGreaterThan(0);
    dumpAndRestore(sh.pid, log);
  });

  test("python3 starting and joining threads all the time: dumps are consistent, the restored one goes on", () => {
    const dir = tempDir("cr-churn-");
    const log = join(dir, "count.log");
    const script = [
      "import threading, time",
      "def work(): time.sleep(0.001)",
      `f = open('${log}', 'a', buffering=1)`,
      "n = 0",
      "while True:",
      "    ts = [threading.Thread(target=work) for _ in range(4)]",
      "    for t in ts: t.start()",
      "    for t in ts: t.join()",
      "    n += 1",
      "    f.write(f'{n}\\n')",
    ].join("\n");
    const py = Bun.spawn(["python3", "-c", script], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
    track(py.pid);
    waitFor(() => existsSync(log) && numbers(log).length > 3, 10_000, "python to count");
    const count = () => numbers(log).length;
    expect(dumpWhileChurning(py.pid, 8, count)).toBeGreaterThan(0);
    dumpAndRestore(py.pid, log);
  });
});

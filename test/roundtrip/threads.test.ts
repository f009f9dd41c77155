// Multi-threaded round trips: every thread comes back at its own tid with its
// own registers, xstate, mask, pending signals, altstack, name and TLS, and
// the program (its own checks, or an unmodified python3) keeps going.
import { afterEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  alive, cleanup, expectRunsOnAndPasses, cr, readProgress, readResult, startWorkload, tempDir, track, waitDumpedGone, waitFor, waitGone, WORKLOADS,
} from "../helpers/procs.ts";

afterEach(cleanup);

function threadsOf(pid: number): { tid: number; comm: string }[] {
  return readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b)
    .map((tid) => ({ tid, comm: readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim() }));
}

function ppidOf(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(s.slice(s.lastIndexOf(")") + 2).split(" ")[1]);
}

function dump(pid: number, extra: string[] = []): string {
  const images = tempDir("cr-images-");
  const d = cr(["dump", "-t", String(pid), "-D", images, ...extra]);
  expect(d.stderr).toBe("");
  expect(d.status).toBe(0);
  return images;
}

function restore(images: string, pid: number): void {
  const r = cr(["restore", "-D", images, "-d"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  track(pid);
}

describe("threads", () => {
  test("8 threads come back at their tids with their own masks, pending signals, altstacks, names, TLS and xmm0", () => {
    const w = startWorkload("threads");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const before = threadsOf(w.pid);
    expect(before.length).toBe(9);
    expect(readFileSync(join(w.dir, "tids"), "utf8").trim().split(" ").map(Number).sort((a, b) => a - b))
      .toEqual(before.map((t) => t.tid));
    const images = dump(w.pid);
    waitGone(w.pid);
    restore(images, w.pid);
    expect(threadsOf(w.pid)).toEqual(before);
    expectRunsOnAndPasses(w, 10);
  });

  test("a restored multi-threaded task can be dumped and restored again", () => {
    const w = startWorkload("threads");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const before = threadsOf(w.pid);
    for (let round = 0; round < 2; round++) {
      const images = dump(w.pid);
      waitGone(w.pid);
      restore(images, w.pid);
      const at = readProgress(w.dir);
      waitFor(() => readProgress(w.dir) >= at + 3 || readResult(w.dir) !== null, 15_000, `progress after restore ${round + 1}`);
      expect(readResult(w.dir)).toBeNull();
    }
    expect(threadsOf(w.pid)).toEqual(before);
    expectRunsOnAndPasses(w, 10);
  });

  test("--leave-running cures every thread: the original keeps all its state", () => {
    const w = startWorkload("threads");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const before = threadsOf(w.pid);
    const images = dump(w.pid, ["--leave-running"]);
    expect(threadsOf(w.pid)).toEqual(before);
    expectRunsOnAndPasses(w, 10);
    // The images of the running original restore too.
    waitGone(w.pid);
    restore(images, w.pid);
    expect(threadsOf(w.pid)).toEqual(before);
    expect(alive(w.pid)).toBe(true);
  });

  test("a tree: a shell whose child has 8 threads, both come back", () => {
    const dir = tempDir();
    const wdir = join(dir, "w");
    const sh = Bun.spawn(["bash", "-c", `mkdir ${wdir} && ${join(WORKLOADS, "threads")} ${wdir} & wait`], {
      stdio: ["ignore", "ignore", "ignore"], cwd: dir,
    });
    track(sh.pid);
    waitFor(() => readProgress(wdir) >= 3, 10_000, "the threaded child to run");
    const child = Number(readFileSync(join(wdir, "ready"), "utf8"));
    track(child);
    const before = threadsOf(child);
    expect(before.length).toBe(9);
    const parent = ppidOf(child);
    const images = dump(sh.pid);
    waitDumpedGone(images);
    restore(images, sh.pid);
    expect(threadsOf(child)).toEqual(before);
    // Under the same parent (the shell, or the subshell it forked for the `&&` list).
    expect(ppidOf(child)).toBe(parent);
    expectRunsOnAndPasses({ pid: child, dir: wdir }, 10);
  });

  test("an unmodified bun (JIT, worker threads, epoll, eventfd, timers) keeps running its interval", () => {
    const dir = tempDir();
    const script = join(dir, "p.js");
    writeFileSync(script, `let n = 0; setInterval(() => require("fs").writeFileSync("${dir}/progress", String(++n)), 10);`);
    const p = Bun.spawn([process.execPath, script], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
    track(p.pid);
    waitFor(() => readProgress(dir) >= 10, 10_000, "bun counting");
    const before = threadsOf(p.pid);
    expect(before.length).toBeGreaterThan(1);
    const images = dump(p.pid);
    waitGone(p.pid);
    const at = readProgress(dir);
    restore(images, p.pid);
    expect(threadsOf(p.pid)).toEqual(before);
    waitFor(() => readProgress(dir) >= at + 20, 10_000, "bun counting after restore");
    expect(alive(p.pid)).toBe(true);
  });

  test("an unmodified python3 with 4 threads keeps every thread counting", () => {
    const dir = tempDir();
    // Each thread bumps its own counter; the main thread publishes them all.
    const script = [
      "import threading, time, os",
      "n = [0] * 4",
      "def work(i):",
      "    while True:",
      "        n[i] += 1",
      "        time.sleep(0.005)",
      "for i in range(4):",
      "    threading.Thread(target=work, args=(i,), daemon=True, name=f'py-{i}').start()",
      "while True:",
      `    open('${dir}/p.tmp', 'w').write(' '.join(map(str, n)))`,
      `    os.rename('${dir}/p.tmp', '${dir}/counts')`,
      "    time.sleep(0.02)",
    ].join("\n");
    const p = Bun.spawn(["python3", "-c", script], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
    track(p.pid);
    const counts = (): number[] => {
      try {
        return readFileSync(join(dir, "counts"), "utf8").trim().split(" ").map(Number);
      } catch {
        return [];
      }
    };
    waitFor(() => counts().length === 4 && counts().every((c) => c >= 5), 10_000, "python threads counting");
    const before = threadsOf(p.pid);
    expect(before.length).toBe(5);
    const images = dump(p.pid);
    waitGone(p.pid);
    const at = counts();
    restore(images, p.pid);
    expect(threadsOf(p.pid)).toEqual(before);
    waitFor(() => counts().every((c, i) => c >= at[i]! + 10), 10_000, "every python thread counting after restore");
    expect(alive(p.pid)).toBe(true);
  });
});

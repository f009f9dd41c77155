// Round trips of one process: start a workload that checks its own state,
// dump it (the original is killed), wait until its PID is free, restore it,
// and let the workload itself say whether everything survived.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import {
  alive, cleanup, CR, expectRunsOnAndPasses, cr, procState, readProgress, readResult, startWorkload, roundTrip, stopWorkload, tempDir, track, waitFor, waitGone,
} from "../helpers/procs.ts";

afterEach(cleanup);


const cases: { name: string; args?: string[] }[] = [
  { name: "counter" },
  { name: "pattern", args: ["256"] },
  { name: "signals" },
  { name: "itimer" },
  { name: "avx" },
  { name: "sleeper" },
  { name: "sleeper-static" },
  { name: "posixtimers" },
];

describe("single process round trip", () => {
  for (const c of cases) {
    test(`${c.name} continues with its state intact`, () => {
      const w = startWorkload(c.name, c.args ?? []);
      waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
      roundTrip(w.pid);
      expectRunsOnAndPasses(w);
    });
  }

  test("counter file has no gap and no repeat across the dump", () => {
    const w = startWorkload("counter");
    waitFor(() => readProgress(w.dir) >= 5, 10_000, "counter progress");
    roundTrip(w.pid);
    waitFor(() => readProgress(w.dir) >= 10, 10_000, "counter progress after restore");
    expect(stopWorkload(w)).toStartWith("PASS");
    const nums = readFileSync(join(w.dir, "counter.log"), "utf8").trim().split("\n").map(Number);
    expect(nums.length).toBeGreaterThan(10);
    nums.forEach((n, i) => expect(n).toBe(i));
  });

  test("an unmodified system program (sleep) is restored and keeps sleeping", () => {
    const dir = tempDir();
    const p = Bun.spawn(["sleep", "1000"], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
    track(p.pid);
    waitFor(() => alive(p.pid), 5_000, "sleep to start");
    roundTrip(p.pid);
    Bun.sleepSync(300);
    expect(alive(p.pid)).toBe(true);
    expect(readFileSync(`/proc/${p.pid}/cmdline`, "utf8")).toBe("sleep\u00001000\u0000");
  });

  test("a python3 loop (dynamic glibc, many mappings) keeps counting", () => {
    const dir = tempDir();
    const script = `import time,os\nn=0\nwhile True:\n  n+=1\n  open('${dir}/p.tmp','w').write(str(n))\n  os.rename('${dir}/p.tmp','${dir}/progress')\n  time.sleep(0.01)\n`;
    const p = Bun.spawn(["python3", "-c", script], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
    track(p.pid);
    waitFor(() => readProgress(dir) >= 5, 10_000, "python progress");
    roundTrip(p.pid);
    const after = readProgress(dir);
    waitFor(() => readProgress(dir) >= after + 10, 10_000, "python progress after restore");
    expect(alive(p.pid)).toBe(true);
  });
});

describe("job control", () => {
  test("a stopped process stays stopped through -R and through dump/restore; its SIGCONT handler sees only the user's SIGCONT", () => {
    const dir = tempDir();
    const script = [
      "import os, signal, time",
      "conts = 0",
      "def on_cont(s, f):",
      "    global conts",
      "    conts += 1",
      "signal.signal(signal.SIGCONT, on_cont)",
      "n = 0",
      "while True:",
      "    n += 1",
      `    open('${dir}/p.tmp', 'w').write(f'{n} {conts}')`,
      `    os.rename('${dir}/p.tmp', '${dir}/progress')`,
      "    time.sleep(0.01)",
    ].join("\n");
    const p = Bun.spawn(["python3", "-c", script], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
    track(p.pid);
    const state = (): [number, number] => {
      try {
        const [n, conts] = readFileSync(join(dir, "progress"), "utf8").split(" ").map(Number);
        return [n ?? 0, conts ?? 0];
      } catch {
        return [0, 0];
      }
    };
    waitFor(() => state()[0] >= 5, 10_000, "python progress");
    process.kill(p.pid, "SIGSTOP");
    waitFor(() => procState(p.pid) === "T", 5_000, "the stop");
    const stillStopped = () => {
      const at = state()[0];
      Bun.sleepSync(150);
      expect(procState(p.pid)).toBe("T");
      expect(state()[0]).toBe(at);
    };
    const images = tempDir("cr-images-");
    const d = cr(["dump", "-t", String(p.pid), "-D", images, "--leave-running"]);
    expect(d.stderr).toBe("");
    expect(d.status).toBe(0);
    stillStopped();
    const images2 = tempDir("cr-images-");
    expect(cr(["dump", "-t", String(p.pid), "-D", images2]).status).toBe(0);
    waitGone(p.pid);
    const r = cr(["restore", "-D", images2, "-d"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    stillStopped();
    process.kill(p.pid, "SIGCONT");
    const at = state()[0];
    waitFor(() => state()[0] >= at + 5, 10_000, "progress after SIGCONT");
    expect(state()[1]).toBe(1);
  });
});

describe("dump and restore options", () => {
  test("on a terminal a dump and a restore show a live progress line and erase it; elsewhere they print nothing", () => {
    const w = startWorkload("pattern", ["768"]);
    waitFor(() => readProgress(w.dir) >= 1, 30_000, "the pattern to be written");
    const images = tempDir("cr-images-");
    // script(1) gives cr a terminal; the test-only delay shows the line on a short dump.
    const r = spawnSync("script", ["-qec", `${CR} dump -R --no-sync -t ${w.pid} -D ${images}`, "/dev/null"],
      { encoding: "utf8", env: { ...process.env, CR_TEST_PROGRESS_AFTER_MS: "0" }, timeout: 60_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\r\x1b\[Kdump: \d+ \/ 768 MiB, \d+ MiB\/s/);
    expect(r.stdout.endsWith("\r\x1b[K")).toBe(true);
    const plain = tempDir("cr-images-");
    const d = cr(["dump", "--no-sync", "-t", String(w.pid), "-D", plain]);
    expect({ status: d.status, stderr: d.stderr }).toEqual({ status: 0, stderr: "" });
    waitGone(w.pid);
    const before = readProgress(w.dir);
    // The restored task joins cr's session, script's: it gets SIGHUP when script ends. Let it run a second first.
    const rr = spawnSync("script", ["-qec", `${CR} restore -d -D ${plain} && sleep 1`, "/dev/null"],
      { encoding: "utf8", env: { ...process.env, CR_TEST_PROGRESS_AFTER_MS: "0" }, timeout: 60_000 });
    expect(rr.status).toBe(0);
    track(w.pid);
    expect(rr.stdout).toMatch(/\r\x1b\[Krestore: \d+ \/ 768 MiB, \d+ MiB\/s/);
    // The last line drawn is erased.
    expect(rr.stdout.slice(rr.stdout.lastIndexOf("restore: "))).toContain("\r\x1b[K");
    // It ran on from where it was dumped, checking its memory, until the terminal went.
    expect(readProgress(w.dir)).toBeGreaterThan(before);
    expect(readResult(w.dir)).toBeNull();
    waitGone(w.pid);
  }, 60_000);

  test("CRIU's log options run unchanged: -o FILE in -D, -v4, --display-stats; a failed dump keeps its log", () => {
    const w = startWorkload("counter");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress");
    const images = tempDir("cr-images-");
    const d = cr(["dump", "-t", String(w.pid), "-D", images, "-o", "dump.log", "-v4", "--display-stats"]);
    expect({ status: d.status, stderr: d.stderr }).toEqual({ status: 0, stderr: "" });
    expect(d.stdout).toMatch(new RegExp(`^dump of ${w.pid}: 1 task\\(s\\), [0-9.]+ MiB of pages`));
    expect(readFileSync(join(images, "dump.log"), "utf8")).toContain("manifest written");
    waitGone(w.pid);
    // The log beside the images is not an image: the set still verifies, and restores.
    expect(cr(["show", "--verify", images]).status).toBe(0);
    const r = cr(["restore", "-D", images, "-d", "-o", "restore.log", "-v", "-v", "--json"]);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expect(JSON.parse(r.stdout)).toEqual({ pid: w.pid, totalMs: expect.any(Number) });
    track(w.pid);
    expect(readFileSync(join(images, "restore.log"), "utf8")).toContain(`restored 1 task(s), root ${w.pid}`);
    expectRunsOnAndPasses(w);
    // A dump that fails (no such pid) leaves its log, with the error, and nothing else.
    const failed = tempDir("cr-images-");
    const f = cr(["dump", "-t", "999999999", "-D", failed, "-o", "dump.log", "-v4"]);
    expect(f.status).not.toBe(0);
    expect(readdirSync(failed)).toEqual(["dump.log"]);
    expect(readFileSync(join(failed, "dump.log"), "utf8")).toContain(f.stderr.trim());
  });

  test("--leave-running keeps the original going and the images restore later", () => {
    const w = startWorkload("counter");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress");
    const images = tempDir("cr-images-");
    const d = cr(["dump", "-t", String(w.pid), "-D", images, "--leave-running"]);
    expect(d.stderr).toBe("");
    expect(d.status).toBe(0);
    const at = readProgress(w.dir);
    waitFor(() => readProgress(w.dir) >= at + 5, 10_000, "original progressing after -R");
    expect(alive(w.pid)).toBe(true);
    // The images are good: restore them once the original is gone. The counter
    // file has moved on meanwhile, so the restored run must detect the repeat.
    process.kill(w.pid, "SIGKILL");
    waitGone(w.pid);
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.status).toBe(0);
    track(w.pid);
    waitFor(() => readResult(w.dir) !== null, 10_000, "restored counter to notice the file moved on");
    expect(readResult(w.dir)).toStartWith("FAIL");
  });

  test("--pidfile gets the restored pid, restore without -d exits with the task's status", async () => {
    const w = startWorkload("sleeper");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress");
    const images = tempDir("cr-images-");
    expect(cr(["dump", "-t", String(w.pid), "-D", images]).status).toBe(0);
    waitGone(w.pid);
    const pidfile = join(tempDir(), "pid");
    const child = Bun.spawn([join(import.meta.dir, "../../dist/cr"), "restore", "-D", images, "--pidfile", pidfile], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    track(w.pid);
    waitFor(() => existsSync(pidfile), 10_000, "pidfile");
    expect(Number(readFileSync(pidfile, "utf8").trim())).toBe(w.pid);
    expect(stopWorkload(w)).toStartWith("PASS");
    expect(await child.exited).toBe(0);
  });
});

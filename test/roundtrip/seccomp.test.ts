// Seccomp filters: a task comes back with the very filters it had, in every
// thread, in the same order and shared the same way, with its no_new_privs
// (whether it set it or installed its filters as root), and its filters
// still apply after restore. Strict mode and user-notification filters are
// refused, the task running on untraced.
import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as img from "../../src/images/index.ts";
import {
  alive, cleanup, cr, expectRunsOnAndPasses, roundTrip, startWorkload, tempDir, tracerOf, track, waitFor,
} from "../helpers/procs.ts";

afterEach(cleanup);

const SECCOMP_LINES = ["Seccomp", "Seccomp_filters", "NoNewPrivs", "CapEff"];

/** The seccomp lines of /proc/PID/task/TID/status, by thread. */
function seccompOf(pid: number): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const tid of readdirSync(`/proc/${pid}/task`).sort()) {
    const lines = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8").split("\n");
    out[tid] = lines.filter((l) => SECCOMP_LINES.includes(l.split(":")[0]!));
  }
  return out;
}

const taskImage = (images: string, pid: number) => img.decodeImage("task", img.readImageFile(images, img.taskFile(pid)), img.taskFile(pid));

describe("seccomp", () => {
  for (const mode of ["nnp", "root", "dropadmin"] as const) {
    test(`three threads sharing two filters (${mode}) come back with them and pass`, () => {
      const w = startWorkload("seccomp", [mode]);
      const before = seccompOf(w.pid);
      expect(Object.keys(before)).toHaveLength(3);
      for (const lines of Object.values(before)) {
        expect(lines).toContain("Seccomp:\t2");
        expect(lines).toContain("Seccomp_filters:\t2");
        expect(lines).toContain(`NoNewPrivs:\t${mode === "nnp" ? 1 : 0}`);
      }
      const images = roundTrip(w.pid);
      // Stored once, shared by every thread: A (no flags), then B (SECCOMP_FILTER_FLAG_LOG).
      const t = taskImage(images, w.pid);
      expect(t.seccompFilters?.map((f) => [f.insns.length / 8, f.flags])).toEqual([[7, 0], [4, 2]]);
      expect(t.threads.map((th) => th.seccomp)).toEqual([[0, 1], [0, 1], [0, 1]]);
      expect(seccompOf(w.pid)).toEqual(before);
      expectRunsOnAndPasses(w);
    });
  }

  test("-R leaves the filtered task running, filters and all", () => {
    const w = startWorkload("seccomp");
    const before = seccompOf(w.pid);
    const d = cr(["dump", "-R", "-t", String(w.pid), "-D", tempDir("cr-images-")]);
    expect(d.stderr).toBe("");
    expect(d.status).toBe(0);
    expect(tracerOf(w.pid)).toBe(0);
    expect(seccompOf(w.pid)).toEqual(before);
    expectRunsOnAndPasses(w);
  });

  test("cr show lists the filters and each thread's chain", () => {
    const w = startWorkload("seccomp");
    const images = tempDir("cr-images-");
    const d = cr(["dump", "-R", "-t", String(w.pid), "-D", images]);
    expect(d.status).toBe(0);
    const s = cr(["show", images]);
    expect(s.status).toBe(0);
    expect(s.stdout).toContain("seccomp: 2 filter(s)");
    expect(s.stdout).toContain("7 insns");
    expect(s.stdout).toContain("4 insns, log");
  });
});

// The system's python3 (ctypes: prctl, seccomp).
const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
const CTYPES = [
  "import ctypes, os, errno, time",
  "libc = ctypes.CDLL(None, use_errno=True)",
  "class F(ctypes.Structure): _fields_ = [('code', ctypes.c_ushort), ('jt', ctypes.c_ubyte), ('jf', ctypes.c_ubyte), ('k', ctypes.c_uint)]",
  "class P(ctypes.Structure): _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.POINTER(F))]",
];

/** python3 running `setup`, then counting into DIR/progress while `check` (a Python expression) holds. */
function startPython(dir: string, setup: string[], check: string): number {
  chmodSync(dir, 0o777);
  const script = [
    ...CTYPES,
    ...setup,
    "n = 0",
    "while True:",
    `    if not (${check}): open('${dir}/result', 'w').write('FAIL'); break`,
    "    n += 1",
    `    open('${dir}/p.tmp', 'w').write(str(n))`,
    `    os.rename('${dir}/p.tmp', '${dir}/progress')`,
    "    time.sleep(0.01)",
  ].join("\n");
  const p = Bun.spawn([PYTHON, "-c", script], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
  track(p.pid);
  return p.pid;
}

function progress(dir: string): number {
  try {
    return Number(readFileSync(join(dir, "progress"), "utf8"));
  } catch {
    return 0;
  }
}

function expectCounting(dir: string, what: string): void {
  const at = progress(dir);
  waitFor(() => progress(dir) >= at + 5 || existsSync(join(dir, "result")), 10_000, what);
  expect(existsSync(join(dir, "result"))).toBe(false);
}

describe("seccomp, an unmodified program", () => {
  test("python3 under a filter it loaded with prctl (no_new_privs): round trip, the filter still applies", () => {
    const dir = tempDir();
    // getppid() -> EPERM, everything else allowed; checked every iteration.
    const setup = [
      "prog = (F * 4)(F(0x20, 0, 0, 0), F(0x15, 0, 1, 110), F(0x06, 0, 0, 0x00050001), F(0x06, 0, 0, 0x7fff0000))",
      "assert libc.prctl(38, 1, 0, 0, 0) == 0",
      "assert libc.prctl(22, 2, ctypes.byref(P(4, prog)), 0, 0) == 0",
      "def denied():",
      "    r = libc.syscall(110)",
      "    return r == -1 and ctypes.get_errno() == errno.EPERM",
    ];
    const pid = startPython(dir, setup, "denied()");
    waitFor(() => progress(dir) >= 3, 10_000, "the python counter to run");
    const before = seccompOf(pid);
    expect(before[String(pid)]).toContain("Seccomp_filters:\t1");
    roundTrip(pid);
    expect(seccompOf(pid)).toEqual(before);
    expectCounting(dir, "the restored python to go on with its filter");
  });
});

describe("seccomp refusals", () => {
  function expectRefused(pid: number, dir: string, words: string): void {
    const r = cr(["dump", "-t", String(pid), "-D", tempDir("cr-images-")]);
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(words);
    expect(r.stderr).toContain(`pid ${pid}`);
    expect(alive(pid)).toBe(true);
    expect(tracerOf(pid)).toBe(0);
    expectCounting(dir, "the task to go on after the refused dump");
  }

  /** User + system CPU time of `pid` (clock ticks), from /proc/PID/stat. */
  function cpuTicks(pid: number): number {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return Number(f[11]) + Number(f[12]);
  }

  test("strict mode is refused by name, the task runs on", () => {
    // Strict mode allows read, write, exit and sigreturn only: a pure loop, seen running by its CPU time.
    const p = Bun.spawn([PYTHON, "-c", [
      "import ctypes",
      "libc = ctypes.CDLL(None, use_errno=True)",
      "assert libc.prctl(22, 1, 0, 0, 0) == 0",
      "n = 0",
      "while True: n = (n + 1) % 1000",
    ].join("\n")], { stdio: ["ignore", "ignore", "ignore"] });
    track(p.pid);
    waitFor(() => readFileSync(`/proc/${p.pid}/status`, "utf8").includes("Seccomp:\t1"), 10_000, "strict mode");
    const r = cr(["dump", "-t", String(p.pid), "-D", tempDir("cr-images-")]);
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("seccomp strict mode");
    expect(r.stderr).toContain(`pid ${p.pid}`);
    expect(alive(p.pid)).toBe(true);
    expect(tracerOf(p.pid)).toBe(0);
    const at = cpuTicks(p.pid);
    waitFor(() => cpuTicks(p.pid) >= at + 10, 10_000, "the strict-mode loop to go on");
  });

  test("a filter with user notification is refused by name, the task runs on", () => {
    const dir = tempDir();
    // getppid() goes to a supervisor (SECCOMP_RET_USER_NOTIF); the listener fd stays in the task.
    const setup = [
      "prog = (F * 4)(F(0x20, 0, 0, 0), F(0x15, 0, 1, 110), F(0x06, 0, 0, 0x7fc00000), F(0x06, 0, 0, 0x7fff0000))",
      "assert libc.prctl(38, 1, 0, 0, 0) == 0",
      "listener = libc.syscall(317, 1, 8, ctypes.byref(P(4, prog)))",
      "assert listener >= 0, ctypes.get_errno()",
    ];
    const pid = startPython(dir, setup, "True");
    waitFor(() => progress(dir) >= 3, 10_000, "the python counter to run");
    expectRefused(pid, dir, "user notification");
  });
});

// Failure paths: each must end in one clear line and a non-zero exit, leave a
// dumped process running untouched, and never leave a half-restored process.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, readlinkSync, truncateSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  alive, cleanup, CR, cr, dumpedPids, expectNothingRestored, expectRunsOnAndPasses, expectRunsOnUntraced, oneLine,
  readProgress, sleepMs, startWorkload, tempDir, tracerOf, track, waitFor, waitGone, type Workload,
} from "../helpers/procs.ts";

afterEach(cleanup);

/** A dumped (killed) sleeper: its images and its now-free pid. */
function dumpedSleeper(): { pid: number; images: string; dir: string } {
  const w = startWorkload("sleeper");
  waitFor(() => readProgress(w.dir) >= 2, 10_000, "progress");
  const images = tempDir("cr-images-");
  const d = cr(["dump", "-t", String(w.pid), "-D", images]);
  expect(d.stderr).toBe("");
  expect(d.status).toBe(0);
  waitGone(w.pid);
  return { pid: w.pid, images, dir: w.dir };
}

describe("dump failures leave the process untouched", () => {
  test("a missing pid", () => {
    const p = Bun.spawnSync(["true"]);
    const pid = p.pid;
    waitGone(pid);
    const r = cr(["dump", "-t", String(pid), "-D", tempDir()]);
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toContain(`pid ${pid}`);
    expect(r.stderr).toContain("no such process");
  });

  /** Dump must fail naming fd 1, its target, why, and the pid, and leave the task running untraced. */
  function expectUnsupportedFd(pid: number, dir: string, target: string, why: string): void {
    waitFor(() => readProgress(dir) >= 2, 10_000, "progress");
    const r = cr(["dump", "-t", String(pid), "-D", tempDir()]);
    expect(r.status).not.toBe(0);
    const line = oneLine(r.stderr);
    expect(line).toContain("fd 1");
    expect(line).toContain(target);
    expect(why).not.toBe("");
    expect(line).toContain(why);
    expect(line).toContain(`pid ${pid}`);
    expectRunsOnUntraced(pid, dir);
  }

  test("an unsupported fd (a named FIFO unlinked since it was opened) is named, with its pid, and the process runs on", () => {
    const dir = tempDir();
    const fifo = join(dir, "fifo");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const bin = join(import.meta.dir, "../workloads/bin/sleeper");
    const p = Bun.spawn(["sh", "-c", `exec 1<>"${fifo}"; rm "${fifo}"; exec "${bin}" "${dir}"`], { stdio: ["ignore", "ignore", "ignore"] });
    track(p.pid);
    waitFor(() => existsSync(join(dir, "ready")), 10_000, "sleeper with a FIFO");
    expectUnsupportedFd(p.pid, dir, `${fifo} (deleted)`, "deleted FIFOs are not supported yet");
  });

  test("an fd on the process's own /proc directory (restore could not open it) is named, and the process runs on", () => {
    const dir = tempDir();
    const bin = join(import.meta.dir, "../workloads/bin/sleeper");
    // exec keeps the pid: fd 1 is the sleeper's own /proc/PID/status.
    const p = Bun.spawn(["sh", "-c", `exec 1</proc/self/status; exec "${bin}" "${dir}"`], { stdio: ["ignore", "ignore", "ignore"] });
    track(p.pid);
    waitFor(() => existsSync(join(dir, "ready")), 10_000, "sleeper reading its own /proc");
    expectUnsupportedFd(p.pid, dir, `/proc/${p.pid}/status`, "a file of a process's own /proc directory is not supported yet");
  });

  test("a process another tracer holds is refused, naming the tracer, and runs on", () => {
    const w = startWorkload("sleeper");
    waitFor(() => readProgress(w.dir) >= 2, 10_000, "progress");
    // A stand-in for a debugger: PTRACE_SEIZE from python, then it just waits.
    const tracer = Bun.spawn(["python3", "-c", [
      "import ctypes, sys, time",
      "libc = ctypes.CDLL(None, use_errno=True)",
      `assert libc.ptrace(0x4206, ${w.pid}, None, None) == 0, ctypes.get_errno()`,
      "print('seized', flush=True)",
      "time.sleep(1000)",
    ].join("\n")], { stdio: ["ignore", "pipe", "ignore"] });
    track(tracer.pid);
    try {
      waitFor(() => tracerOf(w.pid) === tracer.pid, 10_000, "the stand-in tracer");
      const r = cr(["dump", "-t", String(w.pid), "-D", tempDir()]);
      expect(r.status).not.toBe(0);
      const line = oneLine(r.stderr);
      expect(line).toContain(`already traced by pid ${tracer.pid}`);
      expect(line).toContain(`pid ${w.pid}`);
      expect(tracerOf(w.pid)).toBe(tracer.pid);
      const at = readProgress(w.dir);
      waitFor(() => readProgress(w.dir) >= at + 5, 10_000, "progress after the refused dump");
    } finally {
      // The tracer goes first: a traced task's death is reported to its tracer before its parent.
      process.kill(tracer.pid, "SIGKILL");
      waitGone(tracer.pid);
    }
  });

  test("a unix socket connected to a process outside the tree (the test's pipe) is named, with its pid, and the process runs on", () => {
    const dir = tempDir();
    // Bun's "pipe" stdio is a unix socket pair whose other end is the test's.
    const p = Bun.spawn([join(import.meta.dir, "../workloads/bin/sleeper"), dir], { stdio: ["ignore", "pipe", "ignore"] });
    track(p.pid);
    expectUnsupportedFd(p.pid, dir, "socket:[", "which no task of the dumped tree holds");
  });

  /** The sleeper, exec'd by python3 after `setup` put a socket at fd 1 (SLEEPER and DIR are defined for it). */
  function sleeperWithSocket(setup: string[]): { pid: number; dir: string } {
    const dir = tempDir();
    const bin = join(import.meta.dir, "../workloads/bin/sleeper");
    const p = Bun.spawn(["python3", "-c", [
      "import os, socket",
      `SLEEPER, DIR = ${JSON.stringify(bin)}, ${JSON.stringify(dir)}`,
      ...setup,
      "os.execv(SLEEPER, [SLEEPER, DIR])",
    ].join("\n")], { stdio: ["ignore", "ignore", "ignore"] });
    track(p.pid);
    waitFor(() => existsSync(join(dir, "ready")), 10_000, "sleeper with a socket");
    return { pid: p.pid, dir };
  }

  /** Sockets a dump refuses: python3 code putting one at fd 1, and the reason the refusal gives. */
  const REFUSED_SOCKETS: { what: string; setup: string[]; why: string }[] = [
    {
      what: "a listening unix socket with a connection waiting to be accepted",
      setup: [
        "l = socket.socket(socket.AF_UNIX)",
        "l.bind(DIR + '/l.sock'); l.listen(4)",
        // Connected, never accepted; the client end goes with the exec (close-on-exec), the connection waits on.
        "c = socket.socket(socket.AF_UNIX); c.connect(DIR + '/l.sock')",
        "os.dup2(l.fileno(), 1)",
      ],
      why: "a listening unix stream socket with 1 connection(s) waiting to be accepted",
    },
    {
      what: "an established TCP connection",
      setup: [
        "l = socket.create_server(('127.0.0.1', 0))",
        "c = socket.create_connection(l.getsockname())",
        // The accepted end stays open too (fd 4), so that the connection stays established.
        "a, _ = l.accept()",
        "os.dup2(c.fileno(), 1); os.dup2(a.fileno(), 4)",
      ],
      why: "established TCP needs --tcp-established, not supported yet",
    },
    {
      what: "a listening TCP socket with a connection waiting to be accepted",
      setup: [
        "l = socket.create_server(('::1', 0), family=socket.AF_INET6)",
        "c = socket.create_connection(l.getsockname()[:2])",
        "os.dup2(l.fileno(), 1)",
      ],
      why: "a listening TCP socket (IPv6) on [::1]:",
    },
    {
      what: "a UDP socket",
      setup: ["s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)", "s.bind(('127.0.0.1', 0))", "os.dup2(s.fileno(), 1)"],
      why: "a UDP socket (IPv4): only unix sockets and listening TCP sockets are supported",
    },
    {
      what: "a socket pair with a file descriptor in flight (SCM_RIGHTS)",
      setup: [
        "a, b = socket.socketpair()",
        "socket.send_fds(b, [b'x'], [os.open('/dev/null', os.O_RDONLY)])",
        "os.dup2(a.fileno(), 1); os.dup2(b.fileno(), 3)",
      ],
      why: "file descriptors in flight (SCM_RIGHTS)",
    },
  ];
  for (const c of REFUSED_SOCKETS) {
    test(`${c.what} is refused, saying why, and the process runs on`, () => {
      const { pid, dir } = sleeperWithSocket(c.setup);
      expectUnsupportedFd(pid, dir, "socket:[", c.why);
    });
  }
});

describe("namespaces (not dumped yet) are refused by name, and the tasks run on untraced", () => {
  /** `pid` is alive, untraced, and still has the namespace link it had. */
  function runsOn(pid: number, kind: string, link: string): void {
    expect(alive(pid)).toBe(true);
    expect(tracerOf(pid)).toBe(0);
    expect(readlinkSync(`/proc/${pid}/ns/${kind}`)).toBe(link);
  }

  test("a process in its own network namespace", () => {
    const p = Bun.spawn(["unshare", "--net", "sleep", "1000"], { stdio: ["ignore", "ignore", "ignore"] });
    track(p.pid);
    const mine = readlinkSync("/proc/self/ns/net");
    waitFor(() => readlinkSync(`/proc/${p.pid}/ns/net`) !== mine, 10_000, "unshare to enter its namespace");
    const link = readlinkSync(`/proc/${p.pid}/ns/net`);
    const r = cr(["dump", "-t", String(p.pid), "-D", tempDir("cr-images-")]);
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toContain(`pid ${p.pid} is in its own network namespace`);
    runsOn(p.pid, "net", link);
  });

  test("a child in its own PID namespace, its parent in cr's: the tree is refused at the child", () => {
    const p = Bun.spawn(["unshare", "--pid", "--fork", "sleep", "1000"], { stdio: ["ignore", "ignore", "ignore"] });
    track(p.pid);
    const childOf = () => Number(readFileSync(`/proc/${p.pid}/task/${p.pid}/children`, "utf8").trim().split(/\s+/)[0] || 0);
    waitFor(() => childOf() > 0 && readlinkSync(`/proc/${childOf()}/exe`).endsWith("/sleep"), 10_000, "unshare's child to run sleep");
    const child = childOf();
    track(child);
    const link = readlinkSync(`/proc/${child}/ns/pid`);
    const r = cr(["dump", "-t", String(p.pid), "-D", tempDir("cr-images-")]);
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toContain(`pid ${child} is in its own PID namespace`);
    runsOn(child, "pid", link);
    expect(alive(p.pid)).toBe(true);
    expect(tracerOf(p.pid)).toBe(0);
  });
});

describe("a tree whose dump fails half-way runs on untouched", () => {
  test("a child holding a UDP socket fails the dump after its parent was dumped; both run on, untraced", () => {
    const dir = tempDir("cr-tree-fail-");
    const log = join(dir, "count.log");
    const py = "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nopen('ready', 'w').close()\ntime.sleep(1000)";
    const sh = Bun.spawn(["bash", "-c", `python3 -c "${py}" & n=0; while :; do n=$((n+1)); echo $n >> "${log}"; sleep 0.02; done`], {
      stdio: ["ignore", "ignore", "ignore"], cwd: dir,
    });
    track(sh.pid);
    waitFor(() => existsSync(join(dir, "ready")) && existsSync(log), 10_000, "bash and its python child");
    const children = readFileSync(`/proc/${sh.pid}/task/${sh.pid}/children`, "utf8").trim().split(/\s+/).map(Number);
    const child = children.find((c) => readFileSync(`/proc/${c}/comm`, "utf8").trim().startsWith("python"))!;
    expect(child).toBeGreaterThan(0);
    track(child);
    const count = () => readFileSync(log, "utf8").trim().split("\n").length;
    const r = cr(["dump", "-t", String(sh.pid), "-D", tempDir()]);
    expect(r.status).not.toBe(0);
    const line = oneLine(r.stderr);
    expect(line).toContain(`pid ${child}`);
    expect(line).toContain("socket:[");
    expect(line).toContain("a UDP socket");
    for (const pid of [sh.pid, child]) {
      expect(alive(pid)).toBe(true);
      expect(tracerOf(pid)).toBe(0);
    }
    const at = count();
    waitFor(() => count() >= at + 5, 10_000, "bash counting after the failed dump");
    const nums = readFileSync(log, "utf8").trim().split("\n").map(Number);
    expect(nums.length).toBeGreaterThanOrEqual(at + 5);
    nums.forEach((n, i) => expect(n).toBe(i + 1));
  });
});

describe("a dump cut short while the parasite sends the pages", () => {
  /**
   * Start dumping a 768 MiB workload and call `act` while its parasite sends
   * the pages (a few hundred ms): the page pipe's write end and the
   * parasite's end of its control socket are then in the task's fd table
   * (the other ends, there for a moment before, have gone to cr).
   */
  async function duringPageDump(act: (w: Workload, dumper: number) => void): Promise<{ w: Workload; images: string; code: number; err: string }> {
    const w = startWorkload("pattern", ["768"]);
    waitFor(() => readProgress(w.dir) >= 1, 30_000, "pattern to fill its memory");
    const fdCount = () => {
      try {
        return readdirSync(`/proc/${w.pid}/fd`).length;
      } catch {
        return -1;
      }
    };
    const before = fdCount();
    const images = tempDir("cr-images-");
    const dump = Bun.spawn([CR, "dump", "-t", String(w.pid), "-D", images], { stdout: "ignore", stderr: "pipe" });
    const end = Date.now() + 30_000;
    while (fdCount() !== before + 2 && Date.now() < end) sleepMs(1);
    sleepMs(20);
    expect(fdCount()).toBe(before + 2);
    act(w, dump.pid);
    const code = await dump.exited;
    const err = await new Response(dump.stderr).text();
    // Without a manifest the directory is not a set of images.
    expect(existsSync(join(images, "manifest.cbor"))).toBe(false);
    return { w, images, code, err };
  }

  test("the task killed: one line, no hang", async () => {
    const { w, code, err } = await duringPageDump((w) => process.kill(w.pid, "SIGKILL"));
    expect(code).not.toBe(0);
    expect(oneLine(err)).toContain(`task ${w.pid} ended while its pages were being dumped`);
    waitGone(w.pid);
  }, 60_000);

  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    test(`cr sent ${sig}: it finishes with the task, which runs on untraced, and exits 128+signal`, async () => {
      const { w, code, err } = await duringPageDump((_, dumper) => process.kill(dumper, sig));
      expect(code).toBe(128 + (sig === "SIGTERM" ? 15 : 2));
      expect(oneLine(err)).toContain(`interrupted by ${sig}`);
      expect(alive(w.pid)).toBe(true);
      expect(tracerOf(w.pid)).toBe(0);
      // The parasite is gone and every register is back: it checks its memory on and passes.
      expectRunsOnAndPasses(w);
    }, 60_000);
  }
});

/** The start time of `pid` (field 22 of its stat, in clock ticks since boot): tells a process from a later one at the same pid. */
function startTime(pid: number): string {
  const s = readFileSync(`/proc/${pid}/stat`, "utf8");
  return s.slice(s.lastIndexOf(")") + 2).split(" ")[19]!;
}

describe("restore refuses before creating anything", () => {
  test("the pid is busy", () => {
    const w = startWorkload("sleeper");
    waitFor(() => readProgress(w.dir) >= 2, 10_000, "progress");
    const started = startTime(w.pid);
    const images = tempDir("cr-images-");
    const d = cr(["dump", "-t", String(w.pid), "-D", images, "-R"]);
    expect(d.stderr).toBe("");
    expect(d.status).toBe(0);
    expect(dumpedPids(images)).toEqual([w.pid]);
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toContain(`pid ${w.pid} is in use`);
    // The process at the pid is still the original (not one the restore put there), untraced, and counts on.
    expect(startTime(w.pid)).toBe(started);
    expectRunsOnUntraced(w.pid, w.dir, 3);
    expect(startTime(w.pid)).toBe(started);
  });

  test("a truncated pages image", () => {
    const { pid, images } = dumpedSleeper();
    const pages = readdirSync(images).find((f) => f.startsWith("pages-"))!;
    truncateSync(join(images, pages), Math.max(0, statSync(join(images, pages)).size - 4096));
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toContain(pages);
    expectNothingRestored(images, [pid]);
  });

  test("a bit flipped in the task image", () => {
    const { pid, images } = dumpedSleeper();
    const name = readdirSync(images).find((f) => f.startsWith("task-"))!;
    const bytes = readFileSync(join(images, name));
    bytes[Math.floor(bytes.length / 2)]! ^= 0x10;
    writeFileSync(join(images, name), bytes);
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toContain(name);
    expectNothingRestored(images, [pid]);
  });
});

describe("restore removes what it built", () => {
  test("a bit flipped in a pages image: found while the task fills its memory, removed before it runs", () => {
    const { pid, images, dir } = dumpedSleeper();
    const name = readdirSync(images).find((f) => f.startsWith("pages-"))!;
    const bytes = readFileSync(join(images, name));
    bytes[Math.floor(bytes.length / 2)]! ^= 0x10;
    writeFileSync(join(images, name), bytes);
    const progress = readProgress(dir);
    // A real count (readProgress gives -1 when it cannot read one): the one the sleeper had reached at the dump.
    expect(progress).toBeGreaterThanOrEqual(2);
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toContain(`${name}: content does not match the manifest (corrupted)`);
    // What it built is gone: no process or thread has the dump's pid, not even a zombie.
    expectNothingRestored(images, [pid]);
    // The restored sleeper never ran: it would have counted on (it writes its progress at least every 100 ms).
    sleepMs(300);
    expect(readProgress(dir)).toBe(progress);
  });
});

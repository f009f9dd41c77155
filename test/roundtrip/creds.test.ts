// Credentials and limits: a task comes back with exactly the ids, groups,
// capability sets, no_new_privs and dumpable flag it had (in every thread),
// never with the restorer's root, and with its resource limits; an unprivileged one with its seccomp filter
// (more in seccomp.test.ts).
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { cleanup, cr, roundTrip, statusLinesByThread, tempDir, waitFor, waitGone } from "../helpers/procs.ts";
import { pythonProgress, SECCOMP_CTYPES, startPythonCounter } from "../helpers/python.ts";

afterEach(cleanup);

const CRED_LINES = ["Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"];

/** The credential lines of /proc/PID/task/TID/status for every thread. */
const credsOf = (pid: number) => statusLinesByThread(pid, CRED_LINES);

/** Owner of /proc/PID: root when the task is not dumpable. */
function procOwner(pid: number): number {
  return Bun.spawnSync(["stat", "-c", "%u", `/proc/${pid}/status`]).stdout.toString().trim() === "0" ? 0 : 1;
}

/** python3 with a second thread, counting into DIR/progress, after `setup`. */
const startCounter = (dir: string, prefix: string[], setup: string[] = []) => startPythonCounter(dir, { prefix, setup, thread: true });
const progress = pythonProgress;

function credsRoundTrip(pid: number, dir: string): void {
  waitFor(() => progress(dir) >= 3, 10_000, "the counter to run");
  const before = credsOf(pid);
  const owner = procOwner(pid);
  roundTrip(pid);
  expect(credsOf(pid)).toEqual(before);
  expect(procOwner(pid)).toBe(owner);
  const at = progress(dir);
  waitFor(() => progress(dir) >= at + 5, 10_000, "the restored counter to go on");
}

describe("credentials", () => {
  test("an unprivileged task (uid/gid 65534, groups 100 and 65534) comes back unprivileged", () => {
    const dir = tempDir();
    const pid = startCounter(dir, ["setpriv", "--reuid=65534", "--regid=65534", "--groups=100,65534"]);
    credsRoundTrip(pid, dir);
    expect(credsOf(pid)[String(pid)]!.find((l) => l.startsWith("Uid"))).toBe("Uid:\t65534\t65534\t65534\t65534");
  });

  test("root with a smaller bounding set, an ambient capability and no_new_privs keeps exactly those", () => {
    const dir = tempDir();
    const pid = startCounter(dir, [
      "setpriv", "--bounding-set=-sys_admin,-net_raw", "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service",
      "--no-new-privs",
    ]);
    credsRoundTrip(pid, dir);
    const st = credsOf(pid)[String(pid)]!;
    expect(st).toContain("NoNewPrivs:\t1");
    expect(st.find((l) => l.startsWith("CapAmb"))).toBe("CapAmb:\t0000000000000400");
  });

  test("resource limits (soft and hard) come back exactly", () => {
    const dir = tempDir();
    const pid = startCounter(dir, ["prlimit", "--nofile=100:200", "--core=0:1000000", "--stack=4194304:unlimited", "--nproc=500:600", "--as=8000000000:unlimited"]);
    waitFor(() => progress(dir) >= 3, 10_000, "the counter to run");
    const before = readFileSync(`/proc/${pid}/limits`, "utf8");
    expect(before).toContain("Max open files            100                  200");
    const images = tempDir("cr-images-");
    expect(cr(["dump", "-t", String(pid), "-D", images]).status).toBe(0);
    waitGone(pid);
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(readFileSync(`/proc/${pid}/limits`, "utf8")).toBe(before);
    const at = progress(dir);
    waitFor(() => progress(dir) >= at + 5, 10_000, "the restored counter to go on");
  });

  test("an unprivileged task under a seccomp filter (no_new_privs) comes back with both, in both threads", () => {
    const dir = tempDir();
    // An allow-everything filter, installed before the second thread starts (which inherits it).
    const seccomp = [
      ...SECCOMP_CTYPES,
      "allow = (F * 1)(F(0x06, 0, 0, 0x7fff0000))",
      "assert libc.prctl(38, 1, 0, 0, 0) == 0",
      "assert libc.prctl(22, 2, ctypes.byref(P(1, allow)), 0, 0) == 0",
    ];
    const pid = startCounter(dir, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"], seccomp);
    waitFor(() => Object.keys(credsOf(pid)).length === 2, 10_000, "the second thread");
    for (const lines of Object.values(credsOf(pid))) expect(lines).toContain("Seccomp:\t2");
    credsRoundTrip(pid, dir);
    for (const lines of Object.values(credsOf(pid))) {
      expect(lines).toContain("Seccomp:\t2");
      expect(lines).toContain("NoNewPrivs:\t1");
      expect(lines).toContain("CapEff:\t0000000000000000");
    }
  });
});

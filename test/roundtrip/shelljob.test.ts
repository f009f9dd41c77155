// Jobs of an interactive shell (--shell-job): a workload runs on a pty under
// a bash that leads its session (outside the dumped tree); it is dumped with
// --shell-job and restored by `cr restore --shell-job` run from a bash on a
// second pty, and must go on there: its ticks continue on the new terminal,
// what is typed on the new terminal reaches its stdin, it is in the session of
// the cr that restored it, and a job that was the terminal's foreground is
// the foreground again. Without --shell-job the dump is refused (and the job
// runs on untraced), and so is the restore of such images.
import { afterEach, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  CR, WORKLOADS, alive, cleanup, cr, oneLine, procState, readProgress, readResult, tempDir, track, tracerOf, waitDumpedGone,
  waitFor, waitGone,
} from "../helpers/procs.ts";
import { startPtyHost, type PtyHost } from "../helpers/pty.ts";

afterEach(cleanup);

interface Ids {
  ppid: number;
  pgid: number;
  sid: number;
  /** Foreground process group of its terminal. */
  tpgid: number;
}

function idsOf(pid: number): Ids {
  const s = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return { ppid: Number(f[1]), pgid: Number(f[2]), sid: Number(f[3]), tpgid: Number(f[5]) };
}

/** The tick numbers printed on a terminal, in order. */
function ticks(out: string): number[] {
  return [...out.matchAll(/^tick (\d+)\r?$/gm)].map((m) => Number(m[1]));
}

/** ttyjob on a new pty under `bash -c`, with (set -m) or without job control. */
function startJob(jobControl: boolean, args: string[] = []): { host: PtyHost; pid: number; dir: string } {
  const dir = tempDir("cr-ttyjob-");
  const cmd = [join(WORKLOADS, "ttyjob"), dir, ...args].map((a) => `'${a}'`).join(" ");
  const host = startPtyHost(["bash", "-c", `${jobControl ? "set -m; " : ""}${cmd}; echo "job ended $?"`]);
  waitFor(() => readResult(dir) !== null || readProgress(dir) >= 3, 15_000, "ttyjob to run");
  expect(readResult(dir)).toBeNull();
  const pid = Number(readFileSync(join(dir, "ready"), "utf8"));
  track(pid);
  return { host, pid, dir };
}

/** A ttyjob dumped with --shell-job (and gone), with the last tick its first terminal showed. */
function dumpJob(jobControl: boolean, args: string[] = []): { pid: number; dir: string; images: string; lastBefore: number; leader: number } {
  const job = startJob(jobControl, args);
  const before = idsOf(job.pid);
  // Where the job is before: under the first bash, in its session; with job
  // control in a group of its own that is the terminal's foreground, else in bash's.
  expect(before.sid).toBe(job.host.leader);
  expect(before.pgid).toBe(jobControl ? job.pid : job.host.leader);
  expect(before.tpgid).toBe(before.pgid);
  waitFor(() => ticks(job.host.output()).length >= 3, 10_000, "ticks on the first terminal");
  const images = tempDir("cr-images-");
  // As a script written for CRIU calls it: a log file in -D, the most verbose level.
  const d = cr(["dump", "-t", String(job.pid), "-D", images, "-o", "dump.log", "-v4", "--shell-job"]);
  expect(d.stderr).toBe("");
  expect(d.status).toBe(0);
  expect(readFileSync(join(images, "dump.log"), "utf8")).toContain("manifest written");
  waitDumpedGone(images);
  // The first terminal is gone with its bash; all it got has been copied out.
  waitGone(job.host.pid);
  return { pid: job.pid, dir: job.dir, images, lastBefore: ticks(job.host.output()).at(-1)!, leader: job.host.leader };
}

/** Its ticks go on from where they were, on the new terminal only. */
function expectTicksGoOn(host: PtyHost, job: { dir: string; lastBefore: number }, lastBefore = job.lastBefore): void {
  waitFor(() => ticks(host.output()).length >= 3 || readResult(job.dir) !== null || !alive(host.leader), 20_000, "ticks on the new terminal");
  expect(readResult(job.dir)).toBeNull();
  const after = ticks(host.output());
  expect(after[0]).toBe(lastBefore + 1);
  after.forEach((n, i) => expect(n).toBe(lastBefore + 1 + i));
}

/** What is typed on `host` reaches the job's stdin. */
function expectInputArrives(host: PtyHost, job: { pid: number; dir: string }, text: string): void {
  host.type(`${text}\n`);
  waitFor(() => host.output().includes(`got: ${text}`) || readResult(job.dir) !== null, 10_000,
    "the typed line to come back");
  expect(readResult(job.dir)).toBeNull();
  expect(readFileSync(join(job.dir, "input"), "utf8")).toEndWith(`${text}\n`);
}

/**
 * Dump the job with --shell-job, check that restoring fails cleanly without
 * --shell-job and without a terminal, then restore it with `bash -c` on a new
 * pty (with or without job control) and check it runs there.
 */
function roundTrip(jobControl: boolean): void {
  // With the terminal's ECHO off: the new terminal must get the job's modes.
  const job = dumpJob(jobControl, ["noecho"]);
  const show = cr(["show", job.images]);
  expect(show.status).toBe(0);
  expect(show.stdout).toContain(`shell job (outside the tree): session ${job.leader}`);
  expect(show.stdout).toMatch(/\btty\b.*the job's controlling terminal/);

  // Without --shell-job, and with it but without a terminal: refused, nothing left behind.
  const plain = cr(["restore", "-D", job.images]);
  expect(plain.status).not.toBe(0);
  expect(oneLine(plain.stderr)).toContain(`the root's session leader ${job.leader} is outside the dumped tree`);
  expect(plain.stderr).toContain("restore it with --shell-job");
  const noTty = spawnSync("setsid", ["-w", CR, "restore", "-D", job.images, "--shell-job"], { encoding: "utf8", timeout: 60_000 });
  expect(noTty.status).not.toBe(0);
  expect(oneLine(noTty.stderr)).toContain("cr has no terminal to attach the job to");
  expect(procState(job.pid)).toBeNull();

  const err = join(tempDir("cr-restore-"), "stderr");
  const host = startPtyHost(["bash", "-c", `${jobControl ? "set -m; " : ""}'${CR}' restore --shell-job -D '${job.images}' -o restore.log -v4 2>'${err}'; echo "restore exited $?"`]);
  expectTicksGoOn(host, job);
  expect(readFileSync(err, "utf8")).toBe("");
  expect(readFileSync(join(job.images, "restore.log"), "utf8")).toContain(`restored 1 task(s), root ${job.pid}`);

  // In the session of the cr that restored it (its parent), on that session's terminal.
  const now = idsOf(job.pid);
  const crPid = now.ppid;
  track(crPid);
  expect(readlinkSync(`/proc/${crPid}/exe`)).toBe(CR);
  expect(now.sid).toBe(host.leader);
  expect(idsOf(crPid).sid).toBe(host.leader);
  expect(now.pgid).toBe(jobControl ? job.pid : idsOf(crPid).pgid);
  // Its group was the foreground at dump: it is again (else it would be stopped reading below).
  expect(now.tpgid).toBe(now.pgid);
  const terminal = readlinkSync(`/proc/${host.leader}/fd/0`);
  for (const fd of [0, 1, 2, 3]) expect({ fd, target: readlinkSync(`/proc/${job.pid}/fd/${fd}`) }).toEqual({ fd, target: terminal });
  // Told to look at its new terminal.
  waitFor(() => host.output().includes("winch 1"), 10_000, "the job to get a SIGWINCH");

  expectInputArrives(host, job, "hello from the new terminal");
  writeFileSync(join(job.dir, "stop"), "");
  waitFor(() => host.output().includes("restore exited"), 20_000, "the job to finish and cr restore to exit");
  expect(readResult(job.dir)).toStartWith("PASS");
  expect(host.output()).toContain("restore exited 0");
}

describe("shell jobs (--shell-job)", () => {
  test("a foreground job with its own process group moves to a new terminal, session and foreground", () => roundTrip(true));
  test("a job in the shell's own process group joins the group of cr restore", () => roundTrip(false));

  test("restored detached, the job runs on in the background of the new terminal, in its session", () => {
    const job = dumpJob(true);
    const host = startPtyHost(["bash", "-c", `set -m; '${CR}' restore -d --shell-job -D '${job.images}'; echo "restore exited $?"; sleep 30`]);
    waitFor(() => host.output().includes("restore exited"), 20_000, "cr restore -d to return");
    expect(host.output()).toContain("restore exited 0");
    expectTicksGoOn(host, job);
    const now = idsOf(job.pid);
    expect({ sid: now.sid, pgid: now.pgid }).toEqual({ sid: host.leader, pgid: job.pid });
    // Not given the terminal: the shell has it.
    expect(now.tpgid).toBe(host.leader);
    expect(host.output()).not.toContain("winch");
    writeFileSync(join(job.dir, "stop"), "");
    waitFor(() => readResult(job.dir) !== null, 20_000, "the job to finish");
    expect(readResult(job.dir)).toStartWith("PASS");
  });

  test("restored from an interactive bash: Ctrl-Z stops the job and cr restore, fg brings both back", () => {
    const job = dumpJob(true);
    const host = startPtyHost(["bash", "--norc", "--noprofile", "-i"]);
    const err = join(tempDir("cr-restore-"), "stderr");
    host.type(`'${CR}' restore --shell-job -D '${job.images}' 2>'${err}'\n`);
    expectTicksGoOn(host, job);
    expect(idsOf(job.pid).tpgid).toBe(job.pid);
    const crPid = idsOf(job.pid).ppid;
    expect(readlinkSync(`/proc/${crPid}/exe`)).toBe(CR);
    track(crPid);

    host.type("\x1a");
    waitFor(() => procState(job.pid) === "T" && procState(crPid) === "T" && idsOf(host.leader).tpgid === host.leader, 10_000,
      "the job and cr to stop and bash to take the terminal back");
    const stoppedAt = ticks(host.output()).at(-1)!;

    host.type("fg\n");
    waitFor(() => ticks(host.output()).at(-1)! >= stoppedAt + 3 || readResult(job.dir) !== null, 10_000, "ticks after fg");
    expect(readResult(job.dir)).toBeNull();
    expect(idsOf(job.pid).tpgid).toBe(job.pid);
    expect(procState(crPid)).not.toBe("T");
    expectInputArrives(host, job, "typed after fg");

    writeFileSync(join(job.dir, "stop"), "");
    waitFor(() => readResult(job.dir) !== null && !alive(crPid), 20_000, "the job to finish and cr restore to exit");
    expect(readResult(job.dir)).toStartWith("PASS");
    expect(readFileSync(err, "utf8")).toBe("");
    host.type("exit\n");
  });

  test("without --shell-job the dump is refused naming the fd and pid, and the job runs on untraced", () => {
    const job = startJob(true);
    const images = tempDir("cr-images-");
    const d = cr(["dump", "-t", String(job.pid), "-D", images]);
    expect(d.status).not.toBe(0);
    const line = oneLine(d.stderr);
    expect(line).toMatch(new RegExp(`\\(pid ${job.pid}\\): fd 0 -> /dev/pts/\\d+: a terminal \\(use --shell-job to dump a job of an interactive shell\\)`));
    expect(tracerOf(job.pid)).toBe(0);
    const at = readProgress(job.dir);
    waitFor(() => readProgress(job.dir) >= at + 3, 10_000, "the job to go on");
    expect(readResult(job.dir)).toBeNull();
  });

  test("terminals other than a job's are refused even with --shell-job, and everything runs on untraced", () => {
    const job = startJob(true);
    const images = tempDir("cr-images-");
    // The bash leading the session: the terminal belongs to a session the tree leads.
    const lead = cr(["dump", "-t", String(job.host.leader), "-D", images, "--shell-job"]);
    expect(lead.status).not.toBe(0);
    expect(oneLine(lead.stderr)).toMatch(new RegExp(`\\(pid ${job.host.leader}\\): unsupported: fd 0 -> /dev/pts/\\d+ \\(the dumped tree leads its own session`));
    // The pty host: it holds the pty master.
    const host = cr(["dump", "-t", String(job.host.pid), "-D", images, "--shell-job"]);
    expect(host.status).not.toBe(0);
    expect(oneLine(host.stderr)).toMatch(new RegExp(`\\(pid ${job.host.pid}\\): unsupported: fd \\d+ -> /dev/ptmx \\(pseudo-terminal masters are not supported yet\\)`));
    for (const pid of [job.pid, job.host.leader, job.host.pid]) expect({ pid, tracer: tracerOf(pid), alive: alive(pid) }).toEqual({ pid, tracer: 0, alive: true });
    const at = readProgress(job.dir);
    waitFor(() => readProgress(job.dir) >= at + 3, 10_000, "the job to go on");
    expect(readResult(job.dir)).toBeNull();
  });
});

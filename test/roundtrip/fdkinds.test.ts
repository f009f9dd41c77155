// Round trips of files with no path (eventfd, timerfd, signalfd, epoll) and
// of a named FIFO holding unread bytes, on the epoll workload: a root and a
// child sharing all of them. The workload checks itself (see epoll.c); the
// tests add what only the outside sees: what the images hold, that SIGUSR1
// sent from outside arrives through the signalfd before and after, that the
// shared epoll is registered once, and the refusals.
import { afterEach, describe, expect, test } from "bun:test";
import { cpSync, existsSync, readFileSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as img from "../../src/images/index.ts";
import { parseEpollTargets } from "../../src/proc/fdinfo.ts";
import {
  alive, cleanup, cr, expectProgress, expectRunsOnUntraced, oneLine, readProgress, readResult, startWorkload,
  stopWorkload, tempDir, tracerOf, track, waitDumpedGone, waitFor, waitGone, type Workload,
} from "../helpers/procs.ts";

afterEach(cleanup);

const FIFO_BYTES = 4000; // FIFO_A + FIFO_B of epoll.c, unread at dump time

function treePids(dir: string): number[] {
  return readFileSync(join(dir, "pids"), "utf8").trim().split(/\s+/).map(Number);
}

/** SIGUSR1s the workload has read through its signalfd. */
function usr1(dir: string): number {
  try {
    return Number(readFileSync(join(dir, "usr1"), "utf8").trim());
  } catch {
    return 0;
  }
}

function sendUsr1(w: Workload, expectCount: number): void {
  process.kill(w.pid, "SIGUSR1");
  waitFor(() => usr1(w.dir) === expectCount || readResult(w.dir) !== null, 10_000, `SIGUSR1 number ${expectCount} read`);
  expect(readResult(w.dir)).toBeNull();
  expect(usr1(w.dir)).toBe(expectCount);
}

/** The epoll workload after a few iterations and one SIGUSR1; every pid tracked. */
function startEpoll(): { w: Workload; pids: number[] } {
  const w = startWorkload("epoll");
  const pids = treePids(w.dir);
  pids.forEach(track);
  expect(pids.length).toBe(2);
  waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
  sendUsr1(w, 1);
  return { w, pids };
}

function dumpOk(pid: number, extra: string[] = []): string {
  const images = tempDir("cr-images-");
  const d = cr(["dump", ...extra, "-t", String(pid), "-D", images]);
  expect(d.stderr).toBe("");
  expect(d.status).toBe(0);
  return images;
}

function restoreOk(images: string): void {
  const r = cr(["restore", "-D", images, "-d"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
}

const filesOf = (images: string) => img.decodeImage("files", img.readImageFile(images, img.FILES), img.FILES);

/** After restore: it goes on, reads one more SIGUSR1, and passes its final checks. */
function continuesAndPasses(w: Workload, pids: number[]): void {
  expectProgress(w);
  sendUsr1(w, 2);
  expect(stopWorkload(w)).toStartWith("PASS");
  for (const p of pids) expect(alive(p)).toBe(false);
}

describe("eventfd, timerfd, signalfd, epoll and named FIFOs", () => {
  test("an epoll loop over a periodic timerfd, an eventfd fed by a child, a signalfd and a named FIFO with unread bytes", () => {
    const { w, pids } = startEpoll();
    const images = dumpOk(w.pid);

    // What the images hold: one description per kind shared by both tasks,
    // the FIFO's bytes once, four registrations of the one epoll.
    const files = filesOf(images);
    const kinds = files.files.map((f) => f.kind);
    for (const k of ["fifo", "eventfd", "timerfd", "signalfd", "epoll"] as const) expect(kinds).toContain(k);
    expect(files.fifos?.length).toBe(1);
    expect(files.fifos![0]!.data.length).toBe(FIFO_BYTES);
    // Two descriptions of the root (read, write) and the child's own, all on the one FIFO.
    expect(files.files.filter((f) => f.kind === "fifo").map((f) => f.fifoId)).toEqual([1, 1, 1]);
    expect(files.files.filter((f) => f.kind === "epoll").length).toBe(1);
    const epoll = files.files.find((f) => f.kind === "epoll")!;
    expect(epoll.epoll?.length).toBe(4);
    expect(files.files.find((f) => f.eventfd?.semaphore)?.eventfd?.count).toBe(5n);
    expect(files.files.filter((f) => f.kind === "timerfd").map((f) => f.timerfd!.clockid).sort()).toEqual([1, 7]);

    const shown = cr(["show", images]);
    expect(shown.status).toBe(0);
    for (const s of ["3.9 KiB buffered of", "count 5, semaphore", "CLOCK_MONOTONIC", "CLOCK_BOOTTIME, next in", "signals SIGUSR1",
      "watches fds", "epoll registrations:", "IN|ERR|HUP|ET", "ONESHOT"]) {
      expect(shown.stdout).toContain(s);
    }

    waitDumpedGone(images);
    restoreOk(images);
    // The shared epoll was registered once: the kernel shows each registration once, at the dumped fd numbers.
    const root = img.decodeImage("task", img.readImageFile(images, img.taskFile(w.pid)), img.taskFile(w.pid));
    const epfd = root.fds.find((f) => f.fileId === epoll.id)!.fd;
    const now = parseEpollTargets(readFileSync(`/proc/${w.pid}/fdinfo/${epfd}`, "utf8"));
    expect(now.map((t) => [t.tfd, t.data]).sort()).toEqual(epoll.epoll!.map((r) => [r.tfd, r.data]).sort());
    continuesAndPasses(w, pids);
  });

  test("with --leave-running the tree runs on with its FIFO bytes and counters untouched; the images restore once it is gone", () => {
    const { w, pids } = startEpoll();
    const images = dumpOk(w.pid, ["-R"]);
    // The workload checks every iteration that the FIFO still holds its bytes
    // and that no event came twice: a dump must only have looked.
    const at = readProgress(w.dir);
    waitFor(() => readProgress(w.dir) >= at + 5 || readResult(w.dir) !== null, 10_000, "progress after the dump");
    expect(readResult(w.dir)).toBeNull();
    for (const p of pids) expect(tracerOf(p)).toBe(0);

    // A copy whose epoll registration no task can make is refused before anything is created.
    const bad = join(tempDir("cr-images-bad-"), "images");
    cpSync(images, bad, { recursive: true });
    const files = filesOf(bad);
    const ep = files.files.find((f) => f.kind === "epoll")!;
    ep.epoll![0]!.tfd = 999;
    img.writeImageFile(bad, img.FILES, img.encodeImage("files", files), { sync: false });
    img.writeManifest(bad, readdirSync(bad).filter((n) => n !== img.MANIFEST), { sync: false });
    const r = cr(["restore", "-D", bad, "-d"]);
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toContain("fd 999 cannot be registered");

    for (const p of [...pids].reverse()) process.kill(p, "SIGKILL");
    for (const p of pids) waitGone(p);

    // A regular file where the FIFO was is refused, and left as it was.
    const fifo = join(w.dir, "fifo");
    renameSync(fifo, `${fifo}.saved`);
    writeFileSync(fifo, "not a fifo");
    const replaced = cr(["restore", "-D", images, "-d"]);
    expect(replaced.status).not.toBe(0);
    expect(oneLine(replaced.stderr)).toContain(`${fifo} is no longer a named FIFO`);
    expect(readFileSync(fifo, "utf8")).toBe("not a fifo");
    for (const p of pids) expect(alive(p)).toBe(false);
    renameSync(`${fifo}.saved`, fifo);

    restoreOk(images);
    continuesAndPasses(w, pids);
  });

  test("a kind still unsupported (a pidfd) fails the dump naming fd, target and pid; the process runs on untraced", () => {
    const dir = tempDir("cr-pidfd-");
    const py = "import os, time\nfd = os.pidfd_open(os.getpid())\nassert fd >= 0\n" +
      "open('ready', 'w').write(str(fd))\ntime.sleep(1000)";
    const p = Bun.spawn(["python3", "-c", py], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
    track(p.pid);
    waitFor(() => existsSync(join(dir, "ready")) && readFileSync(join(dir, "ready"), "utf8") !== "", 10_000, "python with a pidfd");
    const fd = Number(readFileSync(join(dir, "ready"), "utf8"));
    const r = cr(["dump", "-t", String(p.pid), "-D", tempDir()]);
    expect(r.status).not.toBe(0);
    const line = oneLine(r.stderr);
    expect(line).toContain(`unsupported: fd ${fd} -> anon_inode:[pidfd] (this kind of file is not supported yet)`);
    expect(line).toContain(`pid ${p.pid}`);
    expect(alive(p.pid)).toBe(true);
    expect(tracerOf(p.pid)).toBe(0);
  });

  test("an epoll registration whose fd was closed (its file lives on through a dup) is refused, and the process runs on", () => {
    const w = startWorkload("epoll", ["stale"]);
    waitFor(() => readProgress(w.dir) >= 2, 10_000, "progress");
    const r = cr(["dump", "-t", String(w.pid), "-D", tempDir()]);
    expect(r.status).not.toBe(0);
    const line = oneLine(r.stderr);
    // stale(): the pipe's read end was fd 3, the epoll is fd 5.
    expect(line).toContain("fd 5 -> anon_inode:[eventpoll]");
    expect(line).toContain("registration of fd 3");
    expect(line).toContain(`pid ${w.pid}`);
    expectRunsOnUntraced(w.pid, w.dir);
    expect(stopWorkload(w)).toStartWith("PASS");
  });
});

// Round trips of inotify instances: the inotify workload (watches on two
// files and a directory, with a gap in the wds; it checks every event's wd
// and mask itself, see inotify.c), an unmodified `tail -f`, and the refusal
// of a watch whose file was deleted.
import { afterEach, describe, expect, test } from "bun:test";
import { appendFileSync, closeSync, existsSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as img from "../../src/images/index.ts";
import { parseInotifyWatches } from "../../src/proc/fdinfo.ts";
import {
  alive, cleanup, cr, expectRunsOnAndPasses, expectRunsOnUntraced, oneLine, readProgress, readResult,
  startWorkload, stopWorkload, tempDir, track, waitDumpedGone, waitFor, waitGone, dumpRetrying,
} from "../helpers/procs.ts";

afterEach(cleanup);

const IN_MODIFY = 0x2, IN_CLOSE_WRITE = 0x8, IN_CREATE = 0x100;

const filesOf = (images: string) => img.decodeImage("files", img.readImageFile(images, img.FILES), img.FILES);
const numbers = (path: string) => readFileSync(path, "utf8").trim().split(/\s+/).map(Number);

/** The wds the kernel shows for fd `fd` of `pid`, ascending. */
const wdsOf = (pid: number, fd: number) => parseInotifyWatches(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8")).map((w) => w.wd);

/**
 * The workload reads its own fdinfo each round to check its watches: a dump
 * that lands while that file is open refuses it (a /proc file is not
 * supported yet) and is tried again (see dumpRetrying).
 */
const dumpOk = (pid: number): string => dumpRetrying(pid, ["a file of a process's own /proc directory"]);

function restoreOk(images: string, pid: number): void {
  const r = cr(["restore", "-D", images, "-d"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  track(pid);
  expect(alive(pid)).toBe(true);
}

describe("inotify", () => {
  test("watches on two files and a directory, with a gap in the wds, come back at their wds, twice", () => {
    const w = startWorkload("inotify");
    const [fd, wdA, wdB, wdD] = numbers(join(w.dir, "wds")) as [number, number, number, number];
    expect([wdA, wdB, wdD]).toEqual([1, 3, 4]);
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");

    const images = dumpOk(w.pid);
    const ino = filesOf(images).files.filter((f) => f.kind === "inotify");
    expect(ino.length).toBe(1);
    expect(ino[0]!.inotify!.watches).toEqual([
      { wd: wdA, mask: IN_MODIFY, path: join(w.dir, "a") },
      { wd: wdB, mask: IN_MODIFY | IN_CLOSE_WRITE, path: join(w.dir, "b") },
      { wd: wdD, mask: IN_CREATE, path: join(w.dir, "d") },
    ]);
    const shown = cr(["show", images]);
    expect(shown.status).toBe(0);
    for (const s of ["wds 1,3,4", "inotify watches:", "MODIFY|CLOSE_WRITE", join(w.dir, "d")]) expect(shown.stdout).toContain(s);
    waitDumpedGone(images);

    // A watched path that is gone fails the restore, naming it, before any process exists.
    renameSync(join(w.dir, "b"), join(w.dir, "b.away"));
    const missing = cr(["restore", "-D", images, "-d"]);
    expect(missing.status).not.toBe(0);
    expect(oneLine(missing.stderr)).toContain(`inotify_add_watch(${join(w.dir, "b")}) for wd 3 failed (ENOENT)`);
    expect(alive(w.pid)).toBe(false);
    renameSync(join(w.dir, "b.away"), join(w.dir, "b"));

    restoreOk(images, w.pid);
    expect(wdsOf(w.pid, fd)).toEqual([1, 3, 4]);
    const at = readProgress(w.dir);
    waitFor(() => readProgress(w.dir) >= at + 5 || readResult(w.dir) !== null, 15_000, "progress after the first restore");
    expect(readResult(w.dir)).toBeNull();

    // Again, from the restored instance.
    const again = dumpOk(w.pid);
    waitGone(w.pid);
    restoreOk(again, w.pid);
    expect(wdsOf(w.pid, fd)).toEqual([1, 3, 4]);
    expectRunsOnAndPasses(w);
    // Events queued at a dump are lost (not saved): at most one step per dump had to be done twice.
    const lost = existsSync(join(w.dir, "lost")) ? Number(readFileSync(join(w.dir, "lost"), "utf8")) : 0;
    expect(lost).toBeLessThanOrEqual(2);
  });

  test("an unmodified `tail -f FILE` writing to a file follows FILE after a restore", () => {
    const dir = tempDir("cr-tail-");
    const file = join(dir, "log");
    const out = join(dir, "out");
    writeFileSync(file, "first\n");
    const outFd = openSync(out, "w");
    const tail = Bun.spawn(["tail", "-f", file], { stdio: ["ignore", outFd, "ignore"], cwd: dir });
    closeSync(outFd);
    track(tail.pid);
    waitFor(() => readFileSync(out, "utf8") === "first\n", 10_000, "tail to print the first line");
    appendFileSync(file, "second\n");
    waitFor(() => readFileSync(out, "utf8") === "first\nsecond\n", 10_000, "tail to follow before the dump");

    const images = dumpOk(tail.pid);
    const watches = filesOf(images).files.filter((f) => f.kind === "inotify").flatMap((f) => f.inotify!.watches);
    expect(watches.map((x) => x.path)).toContain(file);
    waitGone(tail.pid);
    restoreOk(images, tail.pid);

    appendFileSync(file, "third\n");
    waitFor(() => readFileSync(out, "utf8") === "first\nsecond\nthird\n", 10_000, "the restored tail to print a line appended after");
    appendFileSync(file, "fourth\nfifth\n");
    waitFor(() => readFileSync(out, "utf8").endsWith("third\nfourth\nfifth\n"), 10_000, "the restored tail to print two more");
    expect(readFileSync(out, "utf8")).toBe("first\nsecond\nthird\nfourth\nfifth\n");
  });

  test("a watch on a file deleted since (still open, so the watch stays) fails the dump naming fd, wd and pid; it runs on untraced", () => {
    const w = startWorkload("inotify", ["deleted"]);
    const [fd, wd] = numbers(join(w.dir, "wds")) as [number, number];
    waitFor(() => readProgress(w.dir) >= 2, 10_000, "progress");
    const r = cr(["dump", "-t", String(w.pid), "-D", tempDir()]);
    expect(r.status).not.toBe(0);
    const line = oneLine(r.stderr);
    expect(line).toContain(`fd ${fd} -> anon_inode:inotify (watch wd ${wd}: the watched file`);
    expect(line).toContain("deleted");
    expect(line).toContain(`pid ${w.pid}`);
    expectRunsOnUntraced(w.pid, w.dir);
    expect(stopWorkload(w)).toStartWith("PASS");
  });
});

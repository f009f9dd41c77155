// Deleted ("ghost") files: a file held by two fds, a private and a shared
// mapping after it was unlinked (the ghost workload checks all of it
// itself), a deleted exe, the ghost limit, and what stays refused. After a
// restore, succeeded or failed, nothing cr made may be left on disk.
import { afterEach, describe, expect, test } from "bun:test";
import {
  copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, unlinkSync, writeFileSync,
} from "node:fs";
import { join } from "node:path";
import * as img from "../../src/images/index.ts";
import {
  alive, cleanup, cr, expectRunsOnAndPasses, expectRunsOnUntraced, oneLine, readProgress, readResult,
  startWorkload, stopWorkload, tempDir, track, waitFor, waitGone, WORKLOADS,
} from "../helpers/procs.ts";

afterEach(cleanup);

function dumpKill(pid: number, extra: string[] = []): string {
  const images = tempDir("cr-images-");
  const d = cr(["dump", "-t", String(pid), "-D", images, ...extra]);
  expect(d.stderr).toBe("");
  expect(d.status).toBe(0);
  waitGone(pid);
  return images;
}

function restoreDetached(images: string, pid: number): void {
  const r = cr(["restore", "-D", images, "-d"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  track(pid);
  expect(alive(pid)).toBe(true);
}

const files = (images: string) => img.decodeImage("files", img.readImageFile(images, img.FILES), img.FILES);

describe("deleted files", () => {
  test("a deleted file held by two fds and two mappings comes back deleted, once, with its content and offsets", () => {
    const w = startWorkload("ghost");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const images = dumpKill(w.pid);
    // One ghost for both descriptions and both mappings.
    const f = files(images);
    expect(f.ghosts?.map((g) => ({ path: g.path, size: g.size, mode: g.mode & 0o7777 }))).toEqual([
      { path: join(w.dir, "g/ghost.bin"), size: 16 * 4096 + 100, mode: 0o640 },
    ]);
    expect(f.files.filter((x) => x.ghostId === 1).length).toBe(2);
    expect(readdirSync(images)).toContain(img.ghostFile(1));
    restoreDetached(images, w.pid);
    // Unlinked again: nothing left where it was.
    expect(readdirSync(join(w.dir, "g"))).toEqual([]);
    expectRunsOnAndPasses(w);
  });

  test("a deleted file whose directory is gone too: the directory is made for the restore and removed again", () => {
    const w = startWorkload("ghost");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const images = dumpKill(w.pid);
    rmSync(join(w.dir, "g"), { recursive: true });
    restoreDetached(images, w.pid);
    expect(existsSync(join(w.dir, "g"))).toBe(false);
    expectRunsOnAndPasses(w);
  });

  test("a new file at the deleted file's name is left alone, and the ghost comes back anyway", () => {
    const w = startWorkload("ghost");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const images = dumpKill(w.pid);
    const taken = join(w.dir, "g/ghost.bin");
    writeFileSync(taken, "the new file");
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    track(w.pid);
    expect(readdirSync(join(w.dir, "g"))).toEqual(["ghost.bin"]);
    expect(readFileSync(taken, "utf8")).toBe("the new file");
    // The ghost kept its temporary name, which the workload (checking for the original one) reports.
    waitFor(() => readResult(w.dir) !== null, 10_000, "the workload to check its file's name");
    expect(readResult(w.dir)).toMatch(/fd reads '.*\/g\/ghost\.bin\.cr\.\d+-1\.ghost \(deleted\)'/);
  });

  test("a failed restore leaves no ghost behind", () => {
    // The workload also holds DIR/keep open: removed after the dump, it fails the restore after the ghost was made.
    const dir = tempDir("cr-ghost-fail-");
    Bun.spawnSync(["touch", join(dir, "keep")]);
    const p = Bun.spawn(["sh", "-c", `exec 7<"${dir}/keep"; exec "${WORKLOADS}/ghost" "${dir}"`], { stdio: ["ignore", "ignore", "ignore"] });
    track(p.pid);
    waitFor(() => readProgress(dir) >= 3, 10_000, "progress before the dump");
    const images = dumpKill(p.pid);
    unlinkSync(join(dir, "keep"));
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toContain(join(dir, "keep"));
    expect(existsSync(`/proc/${p.pid}`)).toBe(false);
    expect(readdirSync(join(dir, "g"))).toEqual([]);
  });

  test("a deleted exe: the restored process runs on from it and /proc/PID/exe says (deleted)", () => {
    const bin = join(tempDir("cr-exe-"), "sleeper");
    copyFileSync(join(WORKLOADS, "sleeper"), bin);
    const dir = tempDir("cr-sleeper-");
    const p = Bun.spawn([bin, dir], { stdio: ["ignore", "ignore", "ignore"] });
    track(p.pid);
    waitFor(() => readProgress(dir) >= 2, 10_000, "the copied sleeper");
    unlinkSync(bin);
    expect(readlinkSync(`/proc/${p.pid}/exe`)).toBe(`${bin} (deleted)`);
    const images = dumpKill(p.pid);
    const task = img.decodeImage("task", img.readImageFile(images, img.taskFile(p.pid)), "task");
    expect(task.exe).toBe(bin);
    expect(task.exeGhostId).toBe(1);
    // The exe and every mapping of it share one ghost.
    expect(task.mm.vmas.filter((v) => v.path === bin).every((v) => v.ghostId === 1)).toBe(true);
    restoreDetached(images, p.pid);
    expect(readlinkSync(`/proc/${p.pid}/exe`)).toBe(`${bin} (deleted)`);
    expect(readdirSync(join(bin, ".."))).toEqual([]);
    expectRunsOnAndPasses({ pid: p.pid, dir });
  });

  test("a shared library replaced by an \"upgrade\" while mapped: the old one comes back from its ghost, the new file is left alone", () => {
    const dir = tempDir("cr-lib-");
    const lib = join(dir, "libz.so.1");
    copyFileSync("/usr/lib/x86_64-linux-gnu/libz.so.1", lib);
    const p = Bun.spawn(["python3", "-c", [
      "import ctypes, os, time",
      `lib = ctypes.CDLL('${lib}')`,
      "lib.crc32.restype = ctypes.c_ulong",
      // The upgrade: the mapped file is unlinked and a new one takes its name.
      `os.unlink('${lib}')`,
      `open('${lib}', 'w').write('new version')`,
      "n = 0",
      "while True:",
      "    assert lib.crc32(0, b'hello', 5) == 907060870",
      "    n += 1",
      `    open('${dir}/p.tmp', 'w').write(str(n))`,
      `    os.rename('${dir}/p.tmp', '${dir}/progress')`,
      "    time.sleep(0.01)",
    ].join("\n")], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
    track(p.pid);
    waitFor(() => readProgress(dir) >= 3, 10_000, "python calling into the deleted library");
    const images = dumpKill(p.pid);
    expect(files(images).ghosts?.map((g) => g.path)).toEqual([lib]);
    restoreDetached(images, p.pid);
    const at = readProgress(dir);
    waitFor(() => readProgress(dir) >= at + 5, 10_000, "python to go on calling into the library");
    expect(readFileSync(lib, "utf8")).toBe("new version");
    expect(readdirSync(dir).sort()).toEqual(["libz.so.1", "progress"]);
    const maps = readFileSync(`/proc/${p.pid}/maps`, "utf8").split("\n").filter((l) => l.includes(dir));
    expect(maps.length).toBeGreaterThan(0);
    for (const l of maps) expect(l).toMatch(/\/libz\.so\.1\.cr\.\d+-1\.ghost \(deleted\)$/);
  });

  test("a deleted file over --ghost-limit fails the dump naming it, and the process runs on untraced", () => {
    const w = startWorkload("ghost");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const r = cr(["dump", "-t", String(w.pid), "-D", tempDir("cr-images-"), "--ghost-limit", "64K"]);
    expect(r.status).not.toBe(0);
    const line = oneLine(r.stderr);
    expect(line).toContain(`fd 3 -> ${join(w.dir, "g/ghost.bin")} (deleted)`);
    expect(line).toContain("64.1 KiB (65636 bytes)");
    expect(line).toContain("--ghost-limit");
    expect(line).toContain(`pid ${w.pid}`);
    expectRunsOnUntraced(w.pid, w.dir);
    // Just above its size, it is saved.
    const ok = cr(["dump", "-R", "-t", String(w.pid), "-D", tempDir("cr-images-"), "--ghost-limit", "65636"]);
    expect(ok.stderr).toBe("");
    expect(ok.status).toBe(0);
    expect(stopWorkload(w)).toStartWith("PASS");
  });

  test("--ghost-limit that is not a size is a usage error", () => {
    const r = cr(["dump", "-t", "1", "-D", tempDir(), "--ghost-limit", "lots"]);
    expect(r.status).toBe(2);
    expect(oneLine(r.stderr)).toContain("--ghost-limit");
  });

  test("a tree: parent and child share one description of a deleted file, and still do after restore", () => {
    const dir = tempDir("cr-ghost-tree-");
    mkdirSync(join(dir, "a"));
    mkdirSync(join(dir, "b"));
    const sleeper = join(WORKLOADS, "sleeper");
    // fd 3 is opened once, before the fork: one description, two tasks.
    const p = Bun.spawn(["sh", "-c", `echo data > "${dir}/gone" && exec 3<>"${dir}/gone" && rm "${dir}/gone" && ` +
      `{ "${sleeper}" "${dir}/a" & exec "${sleeper}" "${dir}/b"; }`], { stdio: ["ignore", "ignore", "ignore"] });
    track(p.pid);
    waitFor(() => readProgress(join(dir, "a")) >= 2 && readProgress(join(dir, "b")) >= 2, 10_000, "both sleepers");
    const child = Number(readFileSync(join(dir, "a/ready"), "utf8"));
    track(child);
    const images = dumpKill(p.pid);
    waitGone(child);
    const f = files(images);
    expect(f.ghosts?.length).toBe(1);
    expect(f.files.filter((x) => x.ghostId !== undefined).length).toBe(1);
    restoreDetached(images, p.pid);
    expect(alive(child)).toBe(true);
    for (const pid of [p.pid, child]) expect(readlinkSync(`/proc/${pid}/fd/3`)).toBe(`${dir}/gone (deleted)`);
    expect(statSync(`/proc/${child}/fd/3`).ino).toBe(statSync(`/proc/${p.pid}/fd/3`).ino);
    expect(readdirSync(dir).sort()).toEqual(["a", "b"]);
    expectRunsOnAndPasses({ pid: child, dir: join(dir, "a") });
    expectRunsOnAndPasses({ pid: p.pid, dir: join(dir, "b") });
  });

  test("a deleted directory is still refused by name, and the process runs on", () => {
    const dir = tempDir();
    const p = Bun.spawn(["sh", "-c", `mkdir "${dir}/d" && exec 5<"${dir}/d" && rmdir "${dir}/d" && exec "${WORKLOADS}/sleeper" "${dir}"`], {
      stdio: ["ignore", "ignore", "ignore"],
    });
    track(p.pid);
    waitFor(() => readProgress(dir) >= 2, 10_000, "sleeper holding a deleted directory");
    const r = cr(["dump", "-t", String(p.pid), "-D", tempDir("cr-images-")]);
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toContain(`fd 5 -> ${dir}/d (deleted) (deleted directories are not supported yet)`);
    expectRunsOnUntraced(p.pid, dir, 3);
  });
});

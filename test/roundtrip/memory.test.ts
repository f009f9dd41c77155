// Memory that lives outside the task: a MAP_SHARED file mapping (its content
// is the file's, only the mapping comes back) and SysV shared memory (refused
// with a clear error, the process untouched). And memory the task cannot
// read itself (PROT_NONE with content), which the parasite must still dump.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  alive, cleanup, expectRunsOnAndPasses, cr, readProgress, roundTrip, startWorkload, tempDir, track, waitFor, waitGone,
} from "../helpers/procs.ts";
import * as img from "../../src/images/index.ts";

afterEach(cleanup);

function startPython(dir: string, script: string): number {
  const p = Bun.spawn(["python3", "-c", script], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
  track(p.pid);
  return p.pid;
}

describe("shared memory outside the task", () => {
  test("a MAP_SHARED file mapping keeps writing through to the file after restore", () => {
    const dir = tempDir();
    const file = join(dir, "shared.bin");
    writeFileSync(file, new Uint8Array(8192));
    // The counter lives only in the mapping: the file sees it because the mapping is shared.
    const pid = startPython(dir, [
      "import mmap, struct, time",
      `f = open('${file}', 'r+b')`,
      "m = mmap.mmap(f.fileno(), 8192)",
      "n = 0",
      "while True:",
      "    n += 1",
      "    m[4096:4104] = struct.pack('<Q', n)",
      "    time.sleep(0.005)",
    ].join("\n"));
    const count = () => Number(new DataView(readFileSync(file).buffer).getBigUint64(4096, true));
    waitFor(() => count() >= 5, 10_000, "the mapping to be written");
    const images = tempDir("cr-images-");
    const d = cr(["dump", "-t", String(pid), "-D", images]);
    expect(d.stderr).toBe("");
    expect(d.status).toBe(0);
    waitGone(pid);
    const at = count();
    // The mapping is recorded as the file's, shared, with no page of its own in the images.
    const task = img.decodeImage("task", img.readImageFile(images, img.taskFile(pid)), "task");
    const vma = task.mm.vmas.find((v) => v.path === file);
    expect(vma && { kind: vma.kind, shared: (vma.flags & 1) !== 0, dumped: vma.dumped }).toEqual({ kind: "file", shared: true, dumped: false });
    const pagemap = img.decodeImage("pagemap", img.readImageFile(images, img.pagemapFile(pid)), "pagemap");
    expect(pagemap.entries.some((e) => e.start < vma!.end && e.start + e.pages * 4096 > vma!.start)).toBe(false);
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    waitFor(() => count() >= at + 20, 10_000, "the restored process to write through the mapping");
    expect(alive(pid)).toBe(true);
  });

  test("SysV shared memory is refused by name and the process runs on", () => {
    const dir = tempDir();
    const pid = startPython(dir, [
      "import ctypes, time",
      "libc = ctypes.CDLL(None, use_errno=True)",
      "libc.shmat.restype = ctypes.c_void_p",
      "shmid = libc.shmget(0, 4096, 0o1600)",
      "addr = libc.shmat(shmid, None, 0)",
      "libc.shmctl(shmid, 0, None)", // IPC_RMID: gone once detached, nothing left behind
      "n = 0",
      "while True:",
      "    n += 1",
      `    open('${dir}/p.tmp', 'w').write(str(n))`,
      "    import os",
      `    os.rename('${dir}/p.tmp', '${dir}/progress')`,
      "    time.sleep(0.01)",
    ].join("\n"));
    const progress = () => {
      try {
        return Number(readFileSync(join(dir, "progress"), "utf8"));
      } catch {
        return 0;
      }
    };
    waitFor(() => progress() >= 3, 10_000, "python to attach the segment and count");
    const r = cr(["dump", "-t", String(pid), "-D", tempDir("cr-images-")]);
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("SysV shared memory");
    expect(r.stderr).toContain(`pid ${pid}`);
    const at = progress();
    waitFor(() => progress() >= at + 5, 10_000, "python to go on after the refused dump");
  });
});

describe("memory the task cannot read", () => {
  const PROT_READ = 1;

  test("PROT_NONE pages with content are dumped, and come back unreadable with their content", () => {
    const w = startWorkload("protnone");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const images = roundTrip(w.pid);
    // The images hold pages inside the unreadable VMAs, so their content came from the dump.
    const task = img.decodeImage("task", img.readImageFile(images, img.taskFile(w.pid)), "task");
    const pagemap = img.decodeImage("pagemap", img.readImageFile(images, img.pagemapFile(w.pid)), "pagemap");
    const unreadable = task.mm.vmas.filter((v) => v.dumped && (v.prot & PROT_READ) === 0);
    const withPages = unreadable.filter((v) => pagemap.entries.some((e) => e.start >= v.start && e.start < v.end));
    expect(withPages.length).toBeGreaterThanOrEqual(3);
    // Each iteration checks the ranges still fault; the final check reads their content.
    expectRunsOnAndPasses(w);
  });

  test("--leave-running puts every protection back: the task's maps are unchanged", () => {
    const w = startWorkload("protnone");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const before = readFileSync(`/proc/${w.pid}/maps`, "utf8");
    const d = cr(["dump", "-t", String(w.pid), "-D", tempDir("cr-images-"), "-R"]);
    expect(d.stderr).toBe("");
    expect(d.status).toBe(0);
    // No parasite area left, no protection changed, no mapping split or merged.
    expect(readFileSync(`/proc/${w.pid}/maps`, "utf8")).toBe(before);
    expectRunsOnAndPasses(w);
  });
});

describe("sparse shared anonymous memory", () => {
  test("python's mmap.mmap(-1, 64 MiB), every 16th page touched: only those pages are saved, all come back", () => {
    const dir = tempDir();
    // Pages 0, 16, 32, ... hold their number; page 8 was written with zeros only.
    const pid = startPython(dir, [
      "import mmap, os, struct, time",
      "n = 16384",
      "m = mmap.mmap(-1, n * 4096)",
      "for i in range(0, n, 16): m[i*4096:i*4096+8] = struct.pack('<Q', i + 1)",
      "m[8*4096:9*4096] = bytes(4096)",
      "open('ready', 'w').close()",
      "while True:",
      "    time.sleep(0.01)",
      "    if os.path.exists('check'):",
      "        bad = [i for i in range(n) if struct.unpack('<Q', m[i*4096:i*4096+8])[0] != (i + 1 if i % 16 == 0 else 0)]",
      "        open('result.tmp', 'w').write('bad %d' % len(bad))",
      "        os.rename('result.tmp', 'result')",
      "        os.remove('check')",
    ].join("\n"));
    waitFor(() => existsSync(join(dir, "ready")), 10_000, "python to fill its mapping");
    const images = roundTrip(pid);
    // 1024 touched pages of 16384, nothing else of the object: 4 MiB, not 64.
    const shmem = readdirSync(images).filter((f) => f.startsWith("shmem-"));
    expect(shmem).toHaveLength(1);
    expect(statSync(join(images, shmem[0]!)).size).toBe(1024 * 4096);
    writeFileSync(join(dir, "check"), "");
    waitFor(() => existsSync(join(dir, "result")), 10_000, "the restored python to check its mapping");
    expect(readFileSync(join(dir, "result"), "utf8")).toBe("bad 0");
  });
});

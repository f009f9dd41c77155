// Ghost files, the parts that need no process: sizes on the command line,
// which ghosts the mappings need, the files.cbor checks, and recreating a
// ghost on disk (openGhosts: where, under which name, and that nothing is
// left behind, whether it works or fails half-way).
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, fstatSync, readdirSync, readFileSync, readlinkSync, readSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CrError } from "../../src/errors.ts";
import { DEFAULT_GHOST_LIMIT, formatSize, parseSize } from "../../src/dump/ghost.ts";
import { decodeImage, encodeImage, ghostFile, type FilesImage, type TaskImage } from "../../src/images/index.ts";
import { ghostTempName, ghostUses, openGhosts } from "../../src/restore/ghost.ts";
import * as native from "../../src/native/index.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";

afterEach(cleanup);

describe("--ghost-limit sizes", () => {
  test("bytes and binary units", () => {
    expect(parseSize("0")).toBe(0);
    expect(parseSize("4096")).toBe(4096);
    expect(parseSize("12b")).toBe(12);
    expect(parseSize("64K")).toBe(65536);
    expect(parseSize("64M")).toBe(DEFAULT_GHOST_LIMIT);
    expect(parseSize("64MiB")).toBe(64 << 20);
    expect(parseSize("1.5g")).toBe(1.5 * 2 ** 30);
    expect(parseSize(" 2 T ")).toBe(2 * 2 ** 40);
  });
  test("anything else is refused", () => {
    for (const bad of ["", "lots", "-1", "1X", "1ib", "M", "0x10", "1e3", "9".repeat(30)]) expect(() => parseSize(bad)).toThrow();
  });
  test("sizes in messages", () => {
    expect(formatSize(100)).toBe("100 B");
    expect(formatSize(65636)).toBe("64.1 KiB");
    expect(formatSize(64 << 20)).toBe("64.0 MiB");
    expect(formatSize(3 * 2 ** 30)).toBe("3.0 GiB");
  });
});

describe("what the mappings and exes need of each ghost", () => {
  const vma = (ghostId: number, flags: number, prot: number) =>
    ({ start: 0, end: 4096, prot, flags, offset: 0, kind: "file", path: "/x", growsDown: false, dumped: false, ghostId }) as const;
  const task = (exeGhostId: number | undefined, vmas: TaskImage["mm"]["vmas"]) =>
    ({ ...(exeGhostId === undefined ? {} : { exeGhostId }), mm: { vmas } }) as unknown as TaskImage;
  test("read-only for exes and private or read-only mappings, read-write for writable shared ones", () => {
    const uses = ghostUses([
      task(1, [vma(1, 2, 5), vma(2, 2, 3)]),
      task(undefined, [vma(3, 1, 3), vma(4, 1, 1), { ...vma(9, 2, 1), ghostId: undefined } as unknown as TaskImage["mm"]["vmas"][number]]),
      task(3, []),
    ]);
    expect(Object.fromEntries(uses)).toEqual({
      1: { read: true, write: false }, 2: { read: true, write: false }, 3: { read: true, write: true }, 4: { read: true, write: false },
    });
  });
  test("temporary names stay within NAME_MAX", () => {
    expect(ghostTempName("/a/lib.so", 3, 42)).toBe("lib.so.cr.42-3.ghost");
    expect(ghostTempName(`/a/${"x".repeat(250)}`, 3, 42)).toBe(".cr.42-3.ghost");
  });
});

describe("files.cbor ghosts", () => {
  const valid = (): FilesImage => ({
    files: [{ id: 1, kind: "reg", path: "/tmp/g", flags: 2, pos: 5, ghostId: 1 }],
    ghosts: [{ id: 1, path: "/tmp/g", size: 10, mode: 0o100640, uid: 0, gid: 0, mtimeNs: 0n, pages: [] }],
  });
  const decode = (f: FilesImage) => decodeImage("files", encodeImage("files", f), "files.cbor");
  const refused = (edit: (f: FilesImage) => void, reason: string) => {
    const f = valid();
    edit(f);
    expect(() => decode(f)).toThrow(reason);
  };
  test("a valid set decodes", () => expect(decode(valid())).toEqual(valid()));
  test("nonsense is refused", () => {
    refused((f) => (f.files[0]!.ghostId = 2), "ghost 2 is not in ghosts");
    refused((f) => (f.files[0]!.kind = "dir"), "a dir cannot be a ghost file");
    refused((f) => f.ghosts!.push({ ...f.ghosts![0]! }), "ghosts: id 1 appears twice");
    refused((f) => (f.ghosts![0]!.mode = 0o40755), "is not a regular file's");
    for (const p of ["tmp/g", "/tmp/../etc/g", "/tmp//g", "/tmp/./g", "/tmp/g/", "/", "/tmp/\0g"]) {
      refused((f) => (f.ghosts![0]!.path = p), "path");
    }
  });
});

describe("openGhosts", () => {
  const PAGE = 4096;
  /** An image dir with ghost 1 for `path`: 2 pages + 10 bytes, page 0 zero (not saved), page 1 of 0xab, a tail of 0xcd. */
  function imageWithGhost(path: string): { dir: string; files: FilesImage; content: Uint8Array } {
    const dir = tempDir("cr-ghost-images-");
    const content = new Uint8Array(2 * PAGE + 10);
    content.fill(0xab, PAGE, 2 * PAGE);
    content.fill(0xcd, 2 * PAGE);
    const saved = new Uint8Array(2 * PAGE);
    saved.set(content.subarray(PAGE));
    writeFileSync(join(dir, ghostFile(1)), saved);
    const files: FilesImage = {
      files: [
        { id: 7, kind: "reg", path, flags: 2, pos: 100, ghostId: 1 },
        { id: 8, kind: "reg", path, flags: 0o2000, pos: 3, ghostId: 1 },
      ],
      ghosts: [{ id: 1, path, size: content.length, mode: 0o100751, uid: 1234, gid: 99, mtimeNs: 1_600_000_000_000_000_000n, pages: [{ start: PAGE, pages: 2, offset: 0 }] }],
    };
    return { dir, files, content };
  }
  const all = new Set([7, 8]);
  const flags = (f: FilesImage["files"][number]) => f.flags;
  const closing: number[] = [];
  afterEach(() => {
    for (const fd of closing.splice(0)) native.closeFd(fd);
  });

  function readAll(fd: number, size: number): Uint8Array {
    const buf = new Uint8Array(size + 1);
    const n = readSync(fd, buf, 0, size + 1, 0);
    return buf.subarray(0, n);
  }

  test("recreated with its content, mode, owner and mtime, opened at its offsets, under its own name, then unlinked", () => {
    const where = tempDir("cr-ghost-where-");
    const path = join(where, "data.bin");
    const { dir, files, content } = imageWithGhost(path);
    const g = openGhosts(files, all, new Map([[1, { read: true, write: true }]]), dir, 100, flags);
    closing.push(...g.opened);
    expect(readdirSync(where)).toEqual([]);
    expect(g.opened.length).toBe(4);
    const fd = g.files.get(7)!;
    expect(fd).toBeGreaterThanOrEqual(100);
    expect(readlinkSync(`/proc/self/fd/${fd}`)).toBe(`${path} (deleted)`);
    const st = fstatSync(fd, { bigint: true });
    expect({ nlink: st.nlink, mode: st.mode, uid: st.uid, gid: st.gid, mtimeNs: st.mtimeNs }).toEqual({
      nlink: 0n, mode: 0o100751n, uid: 1234n, gid: 99n, mtimeNs: 1_600_000_000_000_000_000n,
    });
    expect(readAll(fd, content.length)).toEqual(content);
    expect(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8")).toMatch(/^pos:\s+100$/m);
    expect(readFileSync(`/proc/self/fdinfo/${g.files.get(8)!}`, "utf8")).toMatch(/^pos:\s+3$/m);
    const fdFlags = (x: number) => parseInt(/^flags:\s+(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${x}`, "utf8"))![1]!, 8);
    expect(fdFlags(g.files.get(8)!) & 0o2003).toBe(0o2000);
    expect(fdFlags(fd) & 3).toBe(2);
    const m = g.maps.get(1)!;
    for (const x of [m.read!, m.write!]) expect(fstatSync(x).ino).toBe(fstatSync(fd).ino);
    expect([fdFlags(m.read!) & 3, fdFlags(m.write!) & 3]).toEqual([0, 2]);
  });

  test("its directory gone: made for it and removed again", () => {
    const where = tempDir("cr-ghost-where-");
    const path = join(where, "a/b/data.bin");
    const { dir, files } = imageWithGhost(path);
    const g = openGhosts(files, all, new Map(), dir, 100, flags);
    closing.push(...g.opened);
    expect(readdirSync(where)).toEqual([]);
    expect(readlinkSync(`/proc/self/fd/${g.files.get(7)!}`)).toBe(`${path} (deleted)`);
  });

  test("its name taken: the other file is left alone and the ghost keeps its own name", () => {
    const where = tempDir("cr-ghost-where-");
    const path = join(where, "data.bin");
    writeFileSync(path, "someone else's");
    const { dir, files } = imageWithGhost(path);
    const g = openGhosts(files, all, new Map(), dir, 100, flags);
    closing.push(...g.opened);
    expect(readdirSync(where)).toEqual(["data.bin"]);
    expect(readFileSync(path, "utf8")).toBe("someone else's");
    expect(readlinkSync(`/proc/self/fd/${g.files.get(7)!}`)).toBe(`${join(where, ghostTempName(path, 1, process.pid))} (deleted)`);
  });

  test("its directory unusable (a file is in the way): recreated in a private directory under $TMPDIR, removed again", () => {
    const where = tempDir("cr-ghost-where-");
    writeFileSync(join(where, "a"), "");
    const path = join(where, "a/data.bin");
    const { dir, files, content } = imageWithGhost(path);
    const logs: string[] = [];
    const g = openGhosts(files, all, new Map([[1, { read: true, write: false }]]), dir, 100, flags, (m) => logs.push(m));
    closing.push(...g.opened);
    const link = readlinkSync(`/proc/self/fd/${g.files.get(7)!}`);
    expect(link).toMatch(/\/cr-ghost-[^/]+\/data\.bin \(deleted\)$/);
    expect(existsSync(link.slice(0, -" (deleted)".length).replace(/\/data\.bin$/, ""))).toBe(false);
    expect(readAll(g.maps.get(1)!.read!, content.length)).toEqual(content);
    expect(logs.join("\n")).toContain("ENOTDIR");
    expect(readdirSync(where)).toEqual(["a"]);
  });

  test("a failure half-way (its content missing) leaves no file, no directory and no fd", () => {
    const where = tempDir("cr-ghost-where-");
    const path = join(where, "x/y/data.bin");
    const { dir, files } = imageWithGhost(path);
    rmSync(join(dir, ghostFile(1)));
    const before = readdirSync("/proc/self/fd").length;
    expect(() => openGhosts(files, all, new Map([[1, { read: true, write: true }]]), dir, 100, flags)).toThrow(CrError);
    expect(readdirSync(where)).toEqual([]);
    expect(readdirSync("/proc/self/fd").length).toBe(before);
  });

  test("a failure after it was opened (a second ghost missing from files.cbor) closes what was opened", () => {
    const where = tempDir("cr-ghost-where-");
    const { dir, files } = imageWithGhost(join(where, "data.bin"));
    const before = readdirSync("/proc/self/fd").length;
    expect(() => openGhosts(files, all, new Map([[2, { read: true, write: false }]]), dir, 100, flags)).toThrow("no ghost file 2");
    expect(readdirSync(where)).toEqual([]);
    expect(readdirSync("/proc/self/fd").length).toBe(before);
  });
});

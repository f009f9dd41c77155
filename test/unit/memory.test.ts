// Classifying a task's mappings: what is re-created how, and which grow down.
import { describe, expect, test } from "bun:test";
import { applySmaps, classifyVma, unreadableWithPages } from "../../src/dump/memory.ts";
import { parseMaps, parseSmaps } from "../../src/proc/maps.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_ANONYMOUS = 0x20, MAP_GROWSDOWN = 0x100;

const maps = parseMaps([
  "55d5c6a00000-55d5c6a21000 rw-p 00000000 00:00 0                          [heap]",
  "7f0000000000-7f0000100000 rw-p 00000000 00:00 0 ",
  "7f0000200000-7f0000201000 r--s 00000000 fd:01 1234                       /srv/data.bin",
  "7f0000300000-7f0000400000 r-xp 00010000 fd:01 5678                       /usr/lib/libc.so.6",
  "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]",
].join("\n"));

describe("classifyVma", () => {
  const vmas = maps.map((m) => classifyVma(m, undefined, 1));

  test("anonymous, heap and stack memory is private anonymous and dumped; the stack grows down by its name", () => {
    expect(vmas.map((v) => v.kind)).toEqual(["heap", "anon", "file", "file", "stack"]);
    for (const i of [0, 1, 4]) expect(vmas[i]!.flags & (MAP_PRIVATE | MAP_ANONYMOUS)).toBe(MAP_PRIVATE | MAP_ANONYMOUS);
    expect(vmas.map((v) => v.growsDown)).toEqual([false, false, false, false, true]);
    expect(vmas[4]!.flags & MAP_GROWSDOWN).toBe(MAP_GROWSDOWN);
  });

  test("a shared file mapping is the file's: not dumped; a private one keeps its private copies", () => {
    expect({ flags: vmas[2]!.flags, dumped: vmas[2]!.dumped, path: vmas[2]!.path }).toEqual({ flags: MAP_SHARED, dumped: false, path: "/srv/data.bin" });
    expect({ flags: vmas[3]!.flags, dumped: vmas[3]!.dumped, offset: vmas[3]!.offset }).toEqual({ flags: MAP_PRIVATE, dumped: true, offset: 0x10000 });
  });
});

describe("applySmaps", () => {
  test("smaps' gd decides, for anonymous memory the MAP_GROWSDOWN flag follows; file mappings keep theirs", () => {
    const vmas = maps.map((m) => classifyVma(m, undefined, 1));
    applySmaps(vmas, new Map([
      [0x7f0000000000, { vmFlags: ["rd", "wr", "mr", "mw", "me", "gd", "ac"], pkey: 3 }],
      [0x7ffd00000000, { vmFlags: ["rd", "wr", "mr", "mw", "me", "ac"], pkey: 0 }],
      [0x7f0000300000, { vmFlags: ["rd", "ex", "mr", "mw", "me", "gd"] }],
    ]));
    expect(vmas.map((v) => v.growsDown)).toEqual([false, true, false, true, false]);
    // A protection key other than the default is kept.
    expect(vmas.map((v) => v.pkey)).toEqual([undefined, 3, undefined, undefined, undefined]);
    expect(vmas[1]!.flags & MAP_GROWSDOWN).toBe(MAP_GROWSDOWN);
    expect(vmas[4]!.flags & MAP_GROWSDOWN).toBe(0);
    expect(vmas[3]!.flags).toBe(MAP_PRIVATE);
  });
});

describe("unreadableWithPages", () => {
  const vmas = parseMaps([
    "7f0000000000-7f0000010000 rw-p 00000000 00:00 0 ",
    "7f0000010000-7f0000012000 ---p 00000000 00:00 0 ", // guard with pages
    "7f0000012000-7f0000020000 rw-p 00000000 00:00 0 ",
    "7f0000020000-7f0000030000 ---p 00000000 00:00 0 ", // guard without pages
    "7f0000030000-7f0000031000 -w-p 00000000 00:00 0 ", // write-only, with a page
  ].join("\n")).map((m) => classifyVma(m, undefined, 1));
  const run = (addr: number, pages: number) => ({ addr, len: pages * 4096 });

  test("only the VMAs without PROT_READ that hold a run, with their own protection", () => {
    const runs = [run(0x7f0000000000, 2), run(0x7f0000011000, 1), run(0x7f0000012000, 3), run(0x7f0000030000, 1)];
    expect(unreadableWithPages(vmas, runs)).toEqual([
      { addr: 0x7f0000010000, len: 0x2000, prot: 0 },
      { addr: 0x7f0000030000, len: 0x1000, prot: 2 },
    ]);
  });

  test("no runs, or runs only in readable memory: nothing to open", () => {
    expect(unreadableWithPages(vmas, [])).toEqual([]);
    expect(unreadableWithPages(vmas, [run(0x7f0000000000, 16), run(0x7f0000012000, 14)])).toEqual([]);
  });
});

describe("parseSmaps", () => {
  test("every mapping of a real smaps gets its VmFlags; no protection key where the kernel shows none", () => {
    const text = readFileSync(join(import.meta.dir, "../fixtures/proc/sleep.smaps"), "utf8");
    const s = parseSmaps(text);
    expect(s.size).toBe(37);
    const stack = parseMaps(text.split("\n").filter((l) => / \[stack\]$/.test(l)).join("\n"))[0]!;
    expect(s.get(stack.start)!.vmFlags).toContain("gd");
    expect([...s.values()].every((e) => e.pkey === undefined && e.vmFlags.length > 0)).toBe(true);
  });
  test("ProtectionKey: lines (x86 PKU kernels) give each mapping its key", () => {
    const s = parseSmaps([
      "7f0000000000-7f0000001000 rw-p 00000000 00:00 0 ",
      "Size:                  4 kB",
      "ProtectionKey:         5",
      "VmFlags: rd wr mr mw me ac",
      "7f0000001000-7f0000002000 rw-p 00000000 00:00 0 ",
      "ProtectionKey:         0",
      "VmFlags: rd wr mr mw me ac",
    ].join("\n"));
    expect([...s.entries()]).toEqual([
      [0x7f0000000000, { vmFlags: ["rd", "wr", "mr", "mw", "me", "ac"], pkey: 5 }],
      [0x7f0000001000, { vmFlags: ["rd", "wr", "mr", "mw", "me", "ac"], pkey: 0 }],
    ]);
    expect(() => parseSmaps("VmFlags: rd\n")).toThrow("smaps field before any mapping");
  });
});

// Pure parts of restore planning: syscall-restart fixup and the restorer hole.
import { describe, expect, test } from "bun:test";
import { findHole, fixupSyscallRestart, PAGE } from "../../src/restore/plan.ts";
import { USER_REGS_FIELDS, USER_REGS_SIZE, type RegName } from "../../src/native/abi.ts";

function regs(vals: Partial<Record<RegName, bigint>>): Uint8Array {
  const b = new Uint8Array(USER_REGS_SIZE);
  const dv = new DataView(b.buffer);
  for (const [k, v] of Object.entries(vals)) dv.setBigInt64(USER_REGS_FIELDS.indexOf(k as RegName) * 8, v as bigint, true);
  return b;
}
function get(b: Uint8Array, r: RegName): bigint {
  return new DataView(b.buffer).getBigInt64(USER_REGS_FIELDS.indexOf(r) * 8, true);
}

describe("fixupSyscallRestart", () => {
  test("ERESTARTSYS re-issues the syscall", () => {
    const out = fixupSyscallRestart(regs({ orig_rax: 7n, rax: -512n, rip: 0x1002n }));
    expect(get(out, "rax")).toBe(7n);
    expect(get(out, "rip")).toBe(0x1000n);
  });
  test("ERESTARTNOHAND and ERESTARTNOINTR too", () => {
    for (const e of [-513n, -514n]) {
      const out = fixupSyscallRestart(regs({ orig_rax: 35n, rax: e, rip: 0x2002n }));
      expect(get(out, "rax")).toBe(35n);
      expect(get(out, "rip")).toBe(0x2000n);
    }
  });
  test("ERESTART_RESTARTBLOCK becomes EINTR at the same rip", () => {
    const out = fixupSyscallRestart(regs({ orig_rax: 35n, rax: -516n, rip: 0x3002n }));
    expect(get(out, "rax")).toBe(-4n);
    expect(get(out, "rip")).toBe(0x3002n);
  });
  test("not in a syscall: untouched", () => {
    const inp = regs({ orig_rax: -1n, rax: -512n, rip: 0x4000n });
    expect(fixupSyscallRestart(inp)).toEqual(inp);
  });
  test("a finished syscall's result is kept", () => {
    const out = fixupSyscallRestart(regs({ orig_rax: 0n, rax: 5n, rip: 0x5000n }));
    expect(get(out, "rax")).toBe(5n);
    expect(get(out, "rip")).toBe(0x5000n);
  });
});

describe("findHole", () => {
  test("takes the highest gap that fits and touches nothing", () => {
    const busy = [
      { start: 0x400000, end: 0x500000 },
      { start: 0x7ffff0000000, end: 0x7ffffffff000 },
      { start: 0x7fff00000000, end: 0x7fff10000000 },
    ];
    const len = 16 * PAGE;
    const h = findHole(busy, len);
    expect(h % PAGE).toBe(0);
    for (const b of busy) expect(h + len <= b.start || h >= b.end).toBe(true);
    expect(h + len).toBe(0x7ffff0000000);
  });
  test("skips gaps that are too small", () => {
    const busy = [
      { start: 0x7ffff0000000, end: 0x7ffffffff000 },
      { start: 0x7fffe0000000, end: 0x7fffeffff000 }, // leaves a 1-page gap
    ];
    const h = findHole(busy, 2 * PAGE);
    expect(h + 2 * PAGE).toBe(0x7fffe0000000);
  });
});

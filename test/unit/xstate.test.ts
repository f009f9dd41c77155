// The rt_sigreturn frame's XSAVE area and the read-back comparison, against
// the recorded layouts of CPUs other than the one the suite runs on.
import { describe, expect, test } from "bun:test";
import {
  areaSize, frameFeatures, frameXstate, imagesLayout, layoutOfRecord, layoutRecord, xstateBv, xstateDifference, xstateProblem,
  type XstateLayout,
} from "../../src/xstate.ts";
import { threadDifference } from "../../src/restore/verify.ts";
import { checkRecord } from "../../src/images/semantic.ts";
import type { InventoryImage } from "../../src/images/index.ts";
import { USER_REGS_FIELDS, USER_REGS_SIZE } from "../../src/native/abi.ts";
import { AVX2_ONLY, SAPPHIRE_RAPIDS, SKYLAKE_SERVER, ZEN4 } from "../fixtures/xstate-layouts.ts";

const MAGIC1 = 0x46505853, MAGIC2 = 0x46505845;
const bit = (b: number) => 1n << BigInt(b);

/** A ptrace XSAVE image in layout `l`, XSTATE_BV `bv`, each feature's bytes filled with its bit number + 1. */
function ptraceImage(l: XstateLayout, bv: bigint, pkru?: number): Uint8Array {
  const x = new Uint8Array(l.size);
  const dv = new DataView(x.buffer);
  x.fill(0xa1, 160, 416); // XMM registers
  dv.setUint32(24, 0x9fc0, true); // MXCSR
  dv.setBigUint64(464, l.xcr0, true); // ptrace writes XCR0 here
  dv.setBigUint64(512, bv, true);
  for (let b = 2; b < 32; b++) if (bv & bit(b)) x.fill(b + 1, l.offsets[b]!, l.offsets[b]! + l.sizes[b]!);
  if (pkru !== undefined) dv.setUint32(l.offsets[9]!, pkru, true);
  return x;
}

function sw(frame: Uint8Array) {
  const dv = new DataView(frame.buffer, frame.byteOffset);
  return { magic1: dv.getUint32(464, true), extended: dv.getUint32(468, true), features: dv.getBigUint64(472, true), size: dv.getUint32(480, true) };
}

describe("the frame's XSAVE area", () => {
  test("AVX on an AMX CPU: every default feature, no tile data (the size a task without AMX permission has)", () => {
    const x = ptraceImage(SAPPHIRE_RAPIDS, 0x7n);
    const { bytes, features } = frameXstate(x, SAPPHIRE_RAPIDS, SAPPHIRE_RAPIDS);
    expect(features).toBe(0x200e7n);
    expect(sw(bytes)).toEqual({ magic1: MAGIC1, extended: 2816 + 4, features: 0x200e7n, size: 2816 });
    expect(bytes.length).toBe(2820);
    expect(new DataView(bytes.buffer).getUint32(2816, true)).toBe(MAGIC2);
    expect(xstateBv(bytes)).toBe(0x7n);
    expect(bytes.subarray(576, 832).every((b) => b === 3)).toBe(true);
    expect(bytes.subarray(160, 416).every((b) => b === 0xa1)).toBe(true);
  });

  test("AMX tile data in use: the frame takes the whole 11008-byte area", () => {
    const x = ptraceImage(SAPPHIRE_RAPIDS, 0x600e7n);
    const { bytes, features } = frameXstate(x, SAPPHIRE_RAPIDS, SAPPHIRE_RAPIDS);
    expect(features).toBe(0x600e7n);
    expect(sw(bytes).size).toBe(11008);
    expect(bytes.subarray(2816, 11008).every((b) => b === 19)).toBe(true);
    expect(frameFeatures(bytes)).toBe(0x600e7n);
  });

  test("an AVX2-only CPU: an 832-byte area", () => {
    const { bytes } = frameXstate(ptraceImage(AVX2_ONLY, 0x7n), AVX2_ONLY, AVX2_ONLY);
    expect(sw(bytes)).toEqual({ magic1: MAGIC1, extended: 836, features: 0x7n, size: 832 });
  });

  test("AVX-512 state of an Intel server moves to AMD Zen 4's offsets, PKRU too", () => {
    const x = ptraceImage(SKYLAKE_SERVER, 0x2e7n, 0x55555554);
    const { bytes } = frameXstate(x, SKYLAKE_SERVER, ZEN4);
    expect(sw(bytes).size).toBe(2440);
    for (const [b, at, len] of [[5, 832, 64], [6, 896, 512], [7, 1408, 1024]] as const) {
      expect(bytes.subarray(at, at + len).every((v) => v === b + 1)).toBe(true);
    }
    expect(new DataView(bytes.buffer).getUint32(2432, true)).toBe(0x55555554);
    expect(xstateProblem(x, SKYLAKE_SERVER, ZEN4, 0n)).toBeNull();
  });

  test("PKRU is carried even when its XSTATE_BV bit is clear (ptrace shows the real value)", () => {
    const x = ptraceImage(SKYLAKE_SERVER, 0x7n, 0x5555555c);
    const { bytes } = frameXstate(x, SKYLAKE_SERVER, SKYLAKE_SERVER);
    expect(xstateBv(bytes) & bit(9)).toBe(bit(9));
    expect(new DataView(bytes.buffer).getUint32(2688, true)).toBe(0x5555555c);
  });

  test("areaSize: the end of the last feature, never less than legacy area + header", () => {
    expect(areaSize(SAPPHIRE_RAPIDS, 0x3n)).toBe(576);
    expect(areaSize(SKYLAKE_SERVER, 0x2e7n)).toBe(2696);
    expect(areaSize(SAPPHIRE_RAPIDS, 0x600e7n)).toBe(11008);
  });
});

describe("what a CPU cannot take is named", () => {
  test("AVX-512 state on an AVX2-only CPU", () => {
    const x = ptraceImage(SKYLAKE_SERVER, 0xe7n);
    expect(xstateProblem(x, SKYLAKE_SERVER, AVX2_ONLY, 0n)).toBe("uses AVX-512 opmask state, which this CPU does not have (or the kernel did not enable)");
  });
  test("a permission for AMX tiles on a CPU without AMX, even with the tiles unused", () => {
    const x = ptraceImage(SAPPHIRE_RAPIDS, 0x7n);
    expect(xstateProblem(x, SAPPHIRE_RAPIDS, SKYLAKE_SERVER, 0x600e7n)).toBe("may use AMX TILEDATA state, which this CPU does not have (or the kernel did not enable)");
    expect(xstateProblem(x, SAPPHIRE_RAPIDS, SKYLAKE_SERVER, 0x200e7n)).toBeNull();
  });
  test("a feature of another size, a compacted image, a truncated one", () => {
    const other = layoutOfRecord({ ...layoutRecord(ZEN4), features: layoutRecord(ZEN4).features.map((f) => (f.bit === 6 ? { ...f, size: 256 } : f)) });
    expect(xstateProblem(ptraceImage(SKYLAKE_SERVER, 0xe7n), SKYLAKE_SERVER, other, 0n)).toBe("AVX-512 ZMM_Hi256 state is 512 bytes in the images, 256 on this CPU");
    const c = ptraceImage(AVX2_ONLY, 0x7n);
    new DataView(c.buffer).setBigUint64(520, 1n << 63n, true);
    expect(xstateProblem(c, AVX2_ONLY, AVX2_ONLY, 0n)).toBe("an XSAVE image in the compacted format");
    expect(xstateProblem(ptraceImage(SKYLAKE_SERVER, 0xe7n).subarray(0, 1200), SKYLAKE_SERVER, SKYLAKE_SERVER, 0n)).toBe("AVX-512 ZMM_Hi256 state lies beyond the 1200-byte image");
  });
  test("images without a recorded layout: this CPU's when their XCR0 is, else why not", () => {
    const sample = ptraceImage(SKYLAKE_SERVER, 0x7n);
    expect(imagesLayout(undefined, sample, SKYLAKE_SERVER)).toBe(SKYLAKE_SERVER);
    expect(imagesLayout(undefined, sample, SAPPHIRE_RAPIDS)).toBe("the images record no CPU layout and were taken with xstate features 0x2e7, this CPU has 0x600e7");
    expect(imagesLayout(layoutRecord(ZEN4), sample, SAPPHIRE_RAPIDS)).toEqual(ZEN4);
  });
});

describe("the state read back after the restore", () => {
  const frame = frameXstate(ptraceImage(SAPPHIRE_RAPIDS, 0x600e7n), SAPPHIRE_RAPIDS, SAPPHIRE_RAPIDS).bytes;
  const back = () => ptraceImage(SAPPHIRE_RAPIDS, 0x600e7n);

  test("the same state: no difference", () => {
    expect(xstateDifference(frame, back(), SAPPHIRE_RAPIDS)).toBeNull();
  });
  test("a state the CPU no longer marks in use but that is all zeros equals an init state", () => {
    const f = frameXstate(ptraceImage(SAPPHIRE_RAPIDS, 0x3n), SAPPHIRE_RAPIDS, SAPPHIRE_RAPIDS).bytes;
    const got = ptraceImage(SAPPHIRE_RAPIDS, 0x3n);
    new DataView(got.buffer).setBigUint64(512, 0x7n, true); // AVX marked in use, all zeros
    got.fill(0, 576, 832);
    expect(xstateDifference(f, got, SAPPHIRE_RAPIDS)).toBeNull();
  });
  test("the kernel's x87/SSE-only fallback is caught at the first lost component", () => {
    const got = back();
    new DataView(got.buffer).setBigUint64(512, 0x3n, true);
    expect(xstateDifference(frame, got, SAPPHIRE_RAPIDS)).toBe("AVX (YMM upper halves) (byte 576: 0x0, expected 0x3)");
  });
  test("a changed XMM register, MXCSR, or tile byte is named", () => {
    let got = back();
    got[200] = 0;
    expect(xstateDifference(frame, got, SAPPHIRE_RAPIDS)).toBe("XMM registers (byte 200: 0x0, expected 0xa1)");
    got = back();
    got[24] = 0x80;
    expect(xstateDifference(frame, got, SAPPHIRE_RAPIDS)).toBe("MXCSR (byte 24: 0x80, expected 0xc0)");
    got = back();
    got[11000] = 7;
    expect(xstateDifference(frame, got, SAPPHIRE_RAPIDS)).toBe("AMX TILEDATA (byte 11000: 0x7, expected 0x13)");
  });
  test("registers (but orig_rax and the flags the kernel owns) and the signal mask", () => {
    const regs = new Uint8Array(USER_REGS_SIZE);
    const set = (r: Uint8Array, name: (typeof USER_REGS_FIELDS)[number], v: bigint) =>
      new DataView(r.buffer).setBigUint64(USER_REGS_FIELDS.indexOf(name) * 8, v, true);
    set(regs, "rip", 0x401000n);
    set(regs, "eflags", 0x246n);
    const want = { tid: 7, regs, sigmask: 0x4000n, frame };
    const got = { tid: 7, regs: regs.slice(), sigmask: 0x4000n, xstate: back() };
    set(got.regs, "orig_rax", 0xffffffffffffffffn);
    set(got.regs, "eflags", 0x10246n); // RF is the kernel's
    expect(threadDifference(want, got, SAPPHIRE_RAPIDS)).toBeNull();
    set(got.regs, "eflags", 0x247n);
    expect(threadDifference(want, got, SAPPHIRE_RAPIDS)).toBe("register eflags is 0x45, expected 0x44");
    set(got.regs, "eflags", 0x246n);
    set(got.regs, "r12", 5n);
    expect(threadDifference(want, got, SAPPHIRE_RAPIDS)).toBe("register r12 is 0x5, expected 0x0");
    set(got.regs, "r12", 0n);
    expect(threadDifference(want, { ...got, sigmask: 0n }, SAPPHIRE_RAPIDS)).toBe("signal mask is 0x0, expected 0x4000");
    const x = back();
    x[1100] = 0;
    expect(threadDifference(want, { ...got, xstate: x }, SAPPHIRE_RAPIDS)).toBe("xstate AVX-512 opmask (byte 1100: 0x0, expected 0x6)");
  });
});

describe("inventory.cbor's CPU layout", () => {
  const inv = (cpu: ReturnType<typeof layoutRecord>): InventoryImage => ({
    crVersion: "t", arch: "x86_64", pageSize: 4096, kernel: "k", dumpTime: "d", rootPid: 1,
    options: { leaveRunning: false, shellJob: false, tcpEstablished: false }, cpu,
  });
  test("a recorded layout checks; features outside XCR0 or the area, or twice, do not", () => {
    const r = layoutRecord(SAPPHIRE_RAPIDS);
    expect(checkRecord("inventory", inv(r))).toBeNull();
    expect(checkRecord("inventory", inv({ ...r, xcr0: 0xe7n }))).toBe("cpu.features[4]: feature 17 is not one of XCR0's");
    expect(checkRecord("inventory", inv({ ...r, xstateSize: 4096 }))).toBe("cpu.features[5]: 8192 bytes at 2816 lie outside the area");
    expect(checkRecord("inventory", inv({ ...r, features: [...r.features, r.features[0]!] }))).toBe("cpu.features: feature 2 appears twice");
    expect(checkRecord("inventory", inv({ ...r, xstateSize: 100 }))).toBe("cpu.xstateSize 100 is not an XSAVE area size");
  });
});

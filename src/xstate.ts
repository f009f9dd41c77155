// The XSAVE area of a thread (x87, SSE, AVX, AVX-512, PKRU, AMX ...) as
// ptrace gives it and as an rt_sigreturn frame must hold it. Pure: layouts
// come in as arguments (this CPU's from libcr, the dumping CPU's from the
// images), so every rule here is unit-tested against recorded layouts of
// other machines.
//
// Both forms use the standard (non-compacted) format: a 512-byte legacy area
// (x87, MXCSR, XMM registers), a 64-byte header (XSTATE_BV: the features
// whose state is not the initial one; XCOMP_BV: 0), then each feature at the
// offset CPUID leaf 0xD gives for it on that CPU. Offsets differ between CPUs
// (AMD puts AVX-512 where Intel had MPX), so a state is moved feature by
// feature, never copied whole from one layout to another.

/** A CPU's user XSAVE layout: enabled features (XCR0) and, by feature bit, offset and size. */
export interface XstateLayout {
  xcr0: bigint;
  /** The area for every feature of xcr0 (CPUID 0xD.0 EBX). */
  size: number;
  offsets: number[];
  sizes: number[];
}

export const LEGACY_SIZE = 512;
export const HEADER_SIZE = 64;
export const XSAVE_MIN = LEGACY_SIZE + HEADER_SIZE;
const SW_RESERVED = 464;
const FP_XSTATE_MAGIC1 = 0x46505853;
const FP_XSTATE_MAGIC2 = 0x46505845;

export const X87 = 0, SSE = 1, AVX = 2, PKRU = 9, TILECFG = 17, TILEDATA = 18;
/**
 * Features a process may use only once it asked (arch_prctl
 * ARCH_REQ_XCOMP_PERM): the kernel then gives each thread a larger buffer,
 * on its first use. Today AMX TILEDATA only (XFEATURE_MASK_USER_DYNAMIC).
 */
export const DYNAMIC_FEATURES = 1n << BigInt(TILEDATA);

const NAMES: Record<number, string> = {
  0: "x87", 1: "SSE", 2: "AVX (YMM upper halves)", 3: "MPX bound registers", 4: "MPX bound config",
  5: "AVX-512 opmask", 6: "AVX-512 ZMM_Hi256", 7: "AVX-512 Hi16_ZMM", 8: "Processor Trace", 9: "PKRU",
  10: "PASID", 11: "CET user", 12: "CET supervisor", 13: "HDC", 14: "UINTR", 15: "LBR", 16: "HWP",
  17: "AMX TILECFG", 18: "AMX TILEDATA", 19: "APX extended registers",
};

export function featureName(bit: number): string {
  return NAMES[bit] ?? `xstate feature ${bit}`;
}

export function featureBits(mask: bigint): number[] {
  const out: number[] = [];
  for (let b = 0; b < 64; b++) if ((mask >> BigInt(b)) & 1n) out.push(b);
  return out;
}

const has = (mask: bigint, bit: number) => ((mask >> BigInt(bit)) & 1n) === 1n;

function u64(x: Uint8Array, off: number): bigint {
  return new DataView(x.buffer, x.byteOffset, x.byteLength).getBigUint64(off, true);
}

/** XSTATE_BV of an XSAVE image: the features whose state it holds. */
export function xstateBv(x: Uint8Array): bigint {
  return u64(x, LEGACY_SIZE);
}

/**
 * Why the XSAVE image `x`, taken on a CPU of layout `src` from a process
 * allowed the features `perm`, cannot be restored on a CPU of layout `dst`;
 * null when it can. Names the feature: a state in use (or a permission)
 * this CPU lacks, or a feature of another size here.
 */
export function xstateProblem(x: Uint8Array, src: XstateLayout, dst: XstateLayout, perm: bigint): string | null {
  if (x.length < XSAVE_MIN) return `an XSAVE image of ${x.length} bytes`;
  if (u64(x, LEGACY_SIZE + 8) !== 0n) return "an XSAVE image in the compacted format";
  const used = xstateBv(x);
  for (const bit of featureBits(used | (perm & DYNAMIC_FEATURES))) {
    const why = has(used, bit) ? "uses" : "may use";
    if (!has(dst.xcr0, bit)) return `${why} ${featureName(bit)} state, which this CPU does not have (or the kernel did not enable)`;
    if (bit < 2 || !has(used, bit)) continue;
    if (!has(src.xcr0, bit) || src.sizes[bit] === undefined || src.offsets[bit] === undefined) {
      return `holds ${featureName(bit)} state that the dumping CPU's layout does not describe`;
    }
    if (src.sizes[bit] !== dst.sizes[bit]) return `${featureName(bit)} state is ${src.sizes[bit]} bytes in the images, ${dst.sizes[bit]} on this CPU`;
    if (src.offsets[bit]! + src.sizes[bit]! > x.length) return `${featureName(bit)} state lies beyond the ${x.length}-byte image`;
  }
  return null;
}

/** Size of a standard-format area for the features `mask` in `layout`. */
export function areaSize(layout: XstateLayout, mask: bigint): number {
  let end = XSAVE_MIN;
  for (const bit of featureBits(mask)) {
    if (bit < 2) continue;
    end = Math.max(end, layout.offsets[bit]! + layout.sizes[bit]!);
  }
  return end;
}

/**
 * The fpstate of thread's rt_sigreturn frame on a CPU of layout `dst`, from
 * its XSAVE image `x` (layout `src`; xstateProblem must have found nothing).
 * The kernel takes a frame's full XSAVE state only up to the size of the
 * thread's own buffer, else it silently restores x87/SSE alone: the frame
 * holds every feature the kernel enables by default plus the dynamic ones in
 * use (the restorer makes the thread use those once first, so its buffer
 * grows). PKRU is always carried: ptrace shows the thread's real value.
 */
export function frameXstate(x: Uint8Array, src: XstateLayout, dst: XstateLayout): { bytes: Uint8Array; features: bigint } {
  let used = xstateBv(x) & dst.xcr0;
  if (has(src.xcr0, PKRU) && has(dst.xcr0, PKRU)) used |= 1n << BigInt(PKRU);
  const features = (dst.xcr0 & ~DYNAMIC_FEATURES) | (used & DYNAMIC_FEATURES);
  const size = areaSize(dst, features);
  const out = new Uint8Array(size + 4);
  const dv = new DataView(out.buffer);
  out.set(x.subarray(0, SW_RESERVED), 0);
  // The software-reserved bytes: what rt_sigreturn checks before it trusts the frame.
  dv.setUint32(SW_RESERVED, FP_XSTATE_MAGIC1, true);
  dv.setUint32(SW_RESERVED + 4, size + 4, true); // extended_size, MAGIC2 included
  dv.setBigUint64(SW_RESERVED + 8, features, true);
  dv.setUint32(SW_RESERVED + 16, size, true); // xstate_size
  dv.setBigUint64(LEGACY_SIZE, used & features, true); // XSTATE_BV; XCOMP_BV stays 0
  for (const bit of featureBits(used & features)) {
    if (bit < 2) continue;
    const from = src.offsets[bit]!, to = dst.offsets[bit]!, len = dst.sizes[bit]!;
    out.set(x.subarray(from, from + len), to);
  }
  dv.setUint32(size, FP_XSTATE_MAGIC2, true);
  return { bytes: out, features };
}

/** The features a frame made by frameXstate holds (its software-reserved bytes). */
export function frameFeatures(frame: Uint8Array): bigint {
  return u64(frame, SW_RESERVED + 8);
}

/** The parts of the legacy area compared one by one (MXCSR_MASK and the reserved bytes are the CPU's). */
const LEGACY_PARTS: { name: string; bit: number; start: number; end: number }[] = [
  { name: "x87 control/status", bit: X87, start: 0, end: 24 },
  { name: "MXCSR", bit: SSE, start: 24, end: 28 },
  { name: "x87 registers", bit: X87, start: 32, end: 160 },
  { name: "XMM registers", bit: SSE, start: 160, end: 416 },
];

/** Bytes of feature `bit` as they take effect: a feature not in XSTATE_BV is in its initial state (zeros). */
function effective(x: Uint8Array, bit: number, start: number, end: number): Uint8Array {
  if (bit >= 2 && bit !== PKRU && !has(xstateBv(x), bit)) return new Uint8Array(end - start);
  return x.subarray(start, end);
}

/**
 * The first component in which the XSAVE image `got` (read back with ptrace
 * from a restored thread, layout `dst`) differs from the frame `frame` it was
 * restored from; null when every component of the frame came back.
 */
export function xstateDifference(frame: Uint8Array, got: Uint8Array, dst: XstateLayout): string | null {
  const parts = [...LEGACY_PARTS];
  for (const bit of featureBits(frameFeatures(frame))) {
    if (bit < 2) continue;
    parts.push({ name: featureName(bit), bit, start: dst.offsets[bit]!, end: dst.offsets[bit]! + dst.sizes[bit]! });
  }
  for (const p of parts) {
    if (got.length < p.end) return `${p.name}: the thread's XSAVE area has ${got.length} bytes, the state ends at ${p.end}`;
    const want = effective(frame, p.bit, p.start, p.end);
    const have = effective(got, p.bit, p.start, p.end);
    const i = want.findIndex((b, k) => b !== have[k]);
    if (i >= 0) return `${p.name} (byte ${p.start + i}: 0x${have[i]!.toString(16)}, expected 0x${want[i]!.toString(16)})`;
  }
  return null;
}

/** One line per feature of a layout: "AVX (YMM upper halves) 256 B at 576". */
export function describeLayout(l: XstateLayout): string[] {
  return featureBits(l.xcr0).map((bit) => (bit < 2 ? featureName(bit) : `${featureName(bit)} ${l.sizes[bit]} B at ${l.offsets[bit]}`));
}

/** A layout as inventory.cbor's `cpu` holds it: only the features XCR0 has. */
export interface LayoutRecord {
  xcr0: bigint;
  xstateSize: number;
  features: { bit: number; offset: number; size: number }[];
}

export function layoutRecord(l: XstateLayout): LayoutRecord {
  return {
    xcr0: l.xcr0, xstateSize: l.size,
    features: featureBits(l.xcr0).filter((b) => b >= 2).map((bit) => ({ bit, offset: l.offsets[bit]!, size: l.sizes[bit]! })),
  };
}

export function layoutOfRecord(r: LayoutRecord): XstateLayout {
  const offsets = new Array<number>(32).fill(0), sizes = new Array<number>(32).fill(0);
  for (const f of r.features) {
    offsets[f.bit] = f.offset;
    sizes[f.bit] = f.size;
  }
  return { xcr0: r.xcr0, size: r.xstateSize, offsets, sizes };
}

/**
 * The layout the images' XSAVE areas are in: the one inventory.cbor records
 * or, for images of an older cr that recorded none, this CPU's when the
 * features the images were taken with (ptrace writes XCR0 into every area's
 * software-reserved bytes) are this CPU's. A string says why neither holds.
 */
export function imagesLayout(record: LayoutRecord | undefined, sample: Uint8Array | undefined, here: XstateLayout): XstateLayout | string {
  if (record) return layoutOfRecord(record);
  if (!sample || sample.length < XSAVE_MIN) return here;
  const xcr0 = u64(sample, SW_RESERVED);
  if (xcr0 === here.xcr0) return here;
  return `the images record no CPU layout and were taken with xstate features 0x${xcr0.toString(16)}, this CPU has 0x${here.xcr0.toString(16)}`;
}

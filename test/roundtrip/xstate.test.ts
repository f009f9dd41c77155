// The CPU's vector and key state across a dump and restore, on this CPU and
// as if dumped on another one: AVX-512 (zmm0-31, k0-7), AMX tiles and the
// permission to use them, protection keys (PKRU). Workloads that need a CPU
// feature are skipped (and counted as skipped) where /proc/cpuinfo lacks it.
// Every restore also reads each thread's registers and xstate back before it
// runs (restore/verify.ts): the tampered images below prove that check fails
// loudly when the kernel does not take the state the frame holds.
import { afterEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import * as img from "../../src/images/index.ts";
import { alive, cleanup, cr, expectRunsOnAndPasses, oneLine, readProgress, roundTrip, startWorkload, tempDir, waitFor, waitGone } from "../helpers/procs.ts";

afterEach(cleanup);

const cpuFlags = new Set((/^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "").trim().split(/\s+/));
const hasAvx512 = cpuFlags.has("avx512f") && cpuFlags.has("avx512bw");
const hasAmx = cpuFlags.has("amx_tile");
const hasPku = cpuFlags.has("pku") && cpuFlags.has("ospke");

const XSTATE_BV = 512;
const TILEDATA = 18n;

function taskImage(images: string, pid: number): img.TaskImage {
  return img.decodeImage("task", img.readImageFile(images, img.taskFile(pid)), img.taskFile(pid));
}
function inventory(images: string): img.InventoryImage {
  return img.decodeImage("inventory", img.readImageFile(images, img.INVENTORY), img.INVENTORY);
}
/** Rewrite records of a dump and its manifest, as a dump made elsewhere would have them. */
function rewrite(images: string, task: img.TaskImage, inv?: img.InventoryImage): void {
  img.writeImageFile(images, img.taskFile(task.pid), img.encodeImage("task", task), { sync: false });
  if (inv) img.writeImageFile(images, img.INVENTORY, img.encodeImage("inventory", inv), { sync: false });
  img.writeManifest(images, readdirSync(images).filter((n) => n !== img.MANIFEST), { sync: false });
}
function dumpOf(pid: number): string {
  const images = tempDir("cr-images-");
  const d = cr(["dump", "-t", String(pid), "-D", images]);
  expect(d.stderr).toBe("");
  expect(d.status).toBe(0);
  waitGone(pid);
  return images;
}
const bv = (x: Uint8Array) => new DataView(x.buffer, x.byteOffset, x.byteLength).getBigUint64(XSTATE_BV, true);
const setBv = (x: Uint8Array, v: bigint) => new DataView(x.buffer, x.byteOffset, x.byteLength).setBigUint64(XSTATE_BV, v, true);

describe("vector and key state round trips", () => {
  test.skipIf(!hasAvx512)("AVX-512: every zmm and opmask register continues", () => {
    const w = startWorkload("avx512");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const images = roundTrip(w.pid);
    // The frozen thread held AVX-512 state (the images say so), and it came back.
    const t = taskImage(images, w.pid).threads[0]!;
    expect(bv(t.xstate) & 0xe0n).toBe(0xe0n);
    expectRunsOnAndPasses(w);
  });

  test.skipIf(!hasAmx)("AMX: the tiles, their configuration and the permission continue", () => {
    const w = startWorkload("amx");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const images = roundTrip(w.pid);
    const task = taskImage(images, w.pid);
    expect((task.xcompPerm! >> TILEDATA) & 1n).toBe(1n);
    expect((bv(task.threads[0]!.xstate) >> TILEDATA) & 1n).toBe(1n);
    expectRunsOnAndPasses(w);
  });

  test.skipIf(!hasAmx)("AMX: a process allowed tiles it never used may still use them after the restore", () => {
    const w = startWorkload("amx", ["perm-only"]);
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const images = roundTrip(w.pid);
    const task = taskImage(images, w.pid);
    expect((task.xcompPerm! >> TILEDATA) & 1n).toBe(1n);
    expect((bv(task.threads[0]!.xstate) >> TILEDATA) & 1n).toBe(0n);
    // Its final check loads tiles: without the permission that is SIGILL.
    expectRunsOnAndPasses(w);
  });

  test.skipIf(!hasPku)("protection keys: the keys' rights (PKRU) and the keyed pages continue", () => {
    const w = startWorkload("pkru");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    roundTrip(w.pid);
    expectRunsOnAndPasses(w);
  });
});

describe("state dumped on another CPU", () => {
  test.skipIf(!hasAvx512)("AVX-512 state laid out as on AMD Zen 4 is moved into this CPU's layout", () => {
    const w = startWorkload("avx512");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const images = dumpOf(w.pid);
    const inv = inventory(images);
    const here = new Map(inv.cpu!.features.map((f) => [f.bit, f]));
    // Zen 4 puts the AVX-512 components right after AVX (no MPX gap) and has no AMX.
    const zen4 = new Map([[2, 576], [5, 832], [6, 896], [7, 1408]]);
    const task = taskImage(images, w.pid);
    for (const t of task.threads) {
      const moved = new Uint8Array(2440);
      moved.set(t.xstate.subarray(0, 576));
      for (const [bit, to] of zen4) {
        const f = here.get(bit)!;
        moved.set(t.xstate.subarray(f.offset, f.offset + f.size), to);
      }
      setBv(moved, bv(t.xstate) & 0xe7n);
      t.xstate = moved;
    }
    inv.cpu = { xcr0: 0xe7n, xstateSize: 2440, features: [...zen4].map(([bit, offset]) => ({ bit, offset, size: here.get(bit)!.size })) };
    rewrite(images, task, inv);
    const r = cr(["restore", "-D", images, "-d"]);
    expect(oneLine(r.stderr)).toBe("");
    expect(r.status).toBe(0);
    expectRunsOnAndPasses(w);
  });

  test("state this CPU cannot hold is refused before any task exists, naming the feature", () => {
    const w = startWorkload("avx");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const images = dumpOf(w.pid);
    const inv = inventory(images);
    // As if dumped on a CPU with APX (feature 19, in the old MPX area): this one has none.
    inv.cpu = { ...inv.cpu!, xcr0: inv.cpu!.xcr0 | (1n << 19n), features: [...inv.cpu!.features, { bit: 19, offset: 960, size: 128 }] };
    const task = taskImage(images, w.pid);
    setBv(task.threads[0]!.xstate, bv(task.threads[0]!.xstate) | (1n << 19n));
    rewrite(images, task, inv);
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toContain(`thread ${w.pid}: its CPU state uses APX extended registers state, which this CPU does not have`);
    expect(oneLine(r.stderr)).toContain(`pid ${w.pid}`);
    // Refused before the fork: the pid was never taken again (a restored task would be our child or reparented to us).
    expect(alive(w.pid)).toBe(false);
  });
});

describe("the state read back after the restorer", () => {
  test.skipIf(!hasAmx)("a frame the kernel takes only in part (tile state without the permission) fails the restore, naming thread and component", () => {
    const w = startWorkload("avx");
    waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress before the dump");
    const images = dumpOf(w.pid);
    const task = taskImage(images, w.pid);
    // Tile data marked in use by a process never allowed tiles: the frame is
    // then larger than the thread's buffer and rt_sigreturn falls back to
    // x87/SSE alone, dropping the AVX upper halves the workload holds.
    delete task.xcompPerm;
    const x = task.threads[0]!.xstate;
    expect((bv(x) >> 2n) & 1n).toBe(1n);
    setBv(x, bv(x) | (1n << TILEDATA));
    rewrite(images, task);
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toContain(`thread ${w.pid} did not come back as dumped: xstate AVX (YMM upper halves)`);
    waitGone(w.pid);
  });
});

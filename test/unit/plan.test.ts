// Pure parts of restore planning: syscall-restart fixup, the restorer hole,
// and the plan's threads, POSIX timers, credentials and limits.
import { describe, expect, test } from "bun:test";
import { buildPlan, findHole, fixupSyscallRestart, PAGE } from "../../src/restore/plan.ts";
import {
  PlanCreds, PlanHeader, PlanPosixTimer, PlanThread, PlanVma, USER_REGS_FIELDS, USER_REGS_SIZE, type RegName,
} from "../../src/native/abi.ts";
import type { TaskImage } from "../../src/images/index.ts";
import { SAPPHIRE_RAPIDS } from "../fixtures/xstate-layouts.ts";

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
  test("but an interrupted poll (a restart block too) is re-issued", () => {
    const out = fixupSyscallRestart(regs({ orig_rax: 7n, rax: -516n, rip: 0x3002n }));
    expect(get(out, "rax")).toBe(7n);
    expect(get(out, "rip")).toBe(0x3000n);
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

describe("buildPlan", () => {
  const thread = (tid: number, sigmask: bigint) => ({
    tid, comm: `t${tid}`, regs: regs({ rip: BigInt(tid), orig_rax: -1n }), xstate: new Uint8Array(576 + 64), sigmask,
    rseq: null, tidAddress: tid * 16, robustList: { head: 0, len: 0 }, altstack: { sp: 0, flags: 2, size: 0 },
    pending: [new Uint8Array(128).fill(tid & 0xff)],
  });
  const task: TaskImage = {
    pid: 100, comm: "prog", exe: "/bin/true", cwd: "/", root: "/", umask: 0o022, personality: 0,
    creds: {
      uid: [1000, 1001, 1002, 1003], gid: [2000, 2001, 2002, 2003], groups: [5, 6],
      capInh: 0n, capPrm: 0n, capEff: 0n, capBnd: (1n << 41n) - 1n, capAmb: 0n, noNewPrivs: true, dumpable: 0,
    },
    rlimits: [{ resource: 7, cur: 100n, max: 200n }, { resource: 3, cur: 8388608n, max: 0xffffffffffffffffn }],
    sigactions: [], itimers: { real: { intervalUs: 0, valueUs: 0 }, virtual: { intervalUs: 0, valueUs: 0 }, prof: { intervalUs: 0, valueUs: 0 } },
    sharedPending: [],
    // The main thread listed second: the plan must put it first.
    threads: [thread(101, 0x10n), thread(100, 0x20n)],
    posixTimers: [{ id: 7, clockId: 1, signo: 14, notify: 4, tid: 101, sival: 0xabcn, intervalNs: 20_000_000n, valueNs: 0n, overrun: 0 }],
    mm: {
      vmas: [
        { start: 0x7f0000000000, end: 0x7f0000001000, prot: 3, flags: 0x22, offset: 0, kind: "anon", growsDown: false, dumped: false, pkey: 4 },
        { start: 0x7f0000001000, end: 0x7f0000002000, prot: 3, flags: 0x22, offset: 0, kind: "anon", growsDown: false, dumped: false },
      ],
      brk: 0, startBrk: 0, startCode: 0, endCode: 0, startData: 0, endData: 0, startStack: 0,
      argStart: 0, argEnd: 0, envStart: 0, envEnd: 0, auxv: new Uint8Array(16),
    },
    fds: [],
  };
  const plan = buildPlan({
    pid: 100, sid: 0, pgid: 0, task, pagemap: { entries: [] }, sharedIndex: new Map(), shmemIndex: new Map(),
    serviceFdBase: 3, pagesPath: "/nonexistent/pages-100.img", selfMaps: [], cpu: { image: SAPPHIRE_RAPIDS, here: SAPPHIRE_RAPIDS },
  });
  const dv = new DataView(plan.buffer);
  const H = PlanHeader, T = PlanThread;

  test("threads: the main thread first, each with its own registers, mask, clear-tid address, pending signals and name", () => {
    expect(dv.getUint32(H.threads_count, true)).toBe(2);
    const at = (i: number) => dv.getUint32(H.threads_off, true) + i * T.size;
    expect([dv.getInt32(at(0) + T.tid, true), dv.getInt32(at(1) + T.tid, true)]).toEqual([100, 101]);
    expect(dv.getBigUint64(at(0) + T.sigmask, true)).toBe(0x20n);
    expect(dv.getBigUint64(at(1) + T.sigmask, true)).toBe(0x10n);
    expect(dv.getBigUint64(at(1) + T.regs + USER_REGS_FIELDS.indexOf("rip") * 8, true)).toBe(101n);
    expect(dv.getBigUint64(at(1) + T.tid_address, true)).toBe(101n * 16n);
    const pend = dv.getUint32(at(1) + T.sigpending_off, true);
    expect(dv.getUint32(at(1) + T.sigpending_count, true)).toBe(1);
    expect(plan[pend]).toBe(101);
    expect(new TextDecoder().decode(plan.subarray(at(1) + T.comm, at(1) + T.comm + 4))).toBe("t101");
  });

  test("a POSIX timer keeps its id and sigevent; pending (value 0, periodic) fires at once", () => {
    expect(dv.getUint32(H.posix_timers_count, true)).toBe(1);
    const o = dv.getUint32(H.posix_timers_off, true);
    const P = PlanPosixTimer;
    expect([dv.getInt32(o + P.id, true), dv.getInt32(o + P.notify, true), dv.getInt32(o + P.tid, true)]).toEqual([7, 4, 101]);
    expect(dv.getBigUint64(o + P.sival, true)).toBe(0xabcn);
    expect(dv.getBigUint64(o + P.spec + 8, true)).toBe(20_000_000n); // interval ns
    expect(dv.getBigUint64(o + P.spec + 16 + 8, true)).toBe(1n); // value: 1 ns, not 0 (disarmed)
  });

  test("a VMA's protection key, 0 for the default", () => {
    expect(dv.getUint32(H.vmas_count, true)).toBe(2);
    const at = (i: number) => dv.getUint32(H.vmas_off, true) + i * PlanVma.size;
    expect([dv.getUint32(at(0) + PlanVma.pkey, true), dv.getUint32(at(1) + PlanVma.pkey, true)]).toEqual([4, 0]);
  });

  test("credentials and only the dumped rlimits", () => {
    const C = H.creds;
    expect([0, 1, 2, 3].map((i) => dv.getUint32(C + PlanCreds.uid + 4 * i, true))).toEqual([1000, 1001, 1002, 1003]);
    expect(dv.getUint32(C + PlanCreds.groups_count, true)).toBe(2);
    const g = dv.getUint32(C + PlanCreds.groups_off, true);
    expect([dv.getUint32(g, true), dv.getUint32(g + 4, true)]).toEqual([5, 6]);
    expect(dv.getUint32(C + PlanCreds.no_new_privs, true)).toBe(1);
    expect(dv.getUint32(H.rlimits_set, true)).toBe((1 << 7) | (1 << 3));
    expect(dv.getBigUint64(H.rlimits + 16 * 7, true)).toBe(100n);
    expect(dv.getBigUint64(H.rlimits + 16 * 7 + 8, true)).toBe(200n);
  });
});

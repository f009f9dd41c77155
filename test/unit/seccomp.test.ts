// Seccomp without a kernel: chains read from ptrace become shared filters,
// user notification is spotted, task.cbor's checks, and the plan the restorer
// installs from (common prefix for TSYNC, each thread's rest, CAP_SYS_ADMIN kept).
import { describe, expect, test } from "bun:test";
import { dedupChains, returnsUserNotif } from "../../src/dump/seccomp.ts";
import { checkSeccomp } from "../../src/images/semantic.ts";
import { buildPlan, seccompLayout } from "../../src/restore/plan.ts";
import { PlanHeader, PlanSeccompFilter, PlanThread, USER_REGS_SIZE } from "../../src/native/abi.ts";
import type { TaskImage } from "../../src/images/index.ts";
import { SAPPHIRE_RAPIDS } from "../fixtures/xstate-layouts.ts";

/** Classic BPF: instructions (code, jt, jf, k) as struct sock_filter bytes. */
function bpf(...insns: [number, number, number, number][]): Uint8Array {
  const b = new Uint8Array(insns.length * 8);
  const dv = new DataView(b.buffer);
  insns.forEach(([code, jt, jf, k], i) => {
    dv.setUint16(i * 8, code, true); b[i * 8 + 2] = jt; b[i * 8 + 3] = jf; dv.setUint32(i * 8 + 4, k, true);
  });
  return b;
}
const ALLOW = bpf([0x06, 0, 0, 0x7fff0000]);
const DENY_GETPPID = bpf([0x20, 0, 0, 0], [0x15, 0, 1, 110], [0x06, 0, 0, 0x00050001], [0x06, 0, 0, 0x7fff0000]);
const NOTIFY_GETPPID = bpf([0x20, 0, 0, 0], [0x15, 0, 1, 110], [0x06, 0, 0, 0x7fc00000], [0x06, 0, 0, 0x7fff0000]);

describe("dedupChains", () => {
  test("threads with the same chain share its filters; a thread with one more has its own last filter", () => {
    const a = { insns: DENY_GETPPID, flags: 0 }, b = { insns: ALLOW, flags: 2 };
    const { filters, chains } = dedupChains([[a, b], [a, b], [a], [a, b, { insns: ALLOW, flags: 0 }]]);
    expect(filters.map((f) => [f.insns.length / 8, f.flags])).toEqual([[4, 0], [1, 2], [1, 0]]);
    expect(chains).toEqual([[0, 1], [0, 1], [0], [0, 1, 2]]);
  });
  test("the same program on another parent is another filter", () => {
    const a = { insns: DENY_GETPPID, flags: 0 }, b = { insns: ALLOW, flags: 0 };
    const { filters, chains } = dedupChains([[a, b], [b]]);
    expect(filters).toHaveLength(3);
    expect(chains).toEqual([[0, 1], [2]]);
  });
  test("no thread under seccomp: nothing", () => {
    expect(dedupChains([[], []])).toEqual({ filters: [], chains: [[], []] });
  });
});

describe("returnsUserNotif", () => {
  test("spots SECCOMP_RET_USER_NOTIF returned as a constant, and only that", () => {
    expect(returnsUserNotif(NOTIFY_GETPPID)).toBe(true);
    expect(returnsUserNotif(DENY_GETPPID)).toBe(false);
    // The same value loaded, not returned, is not a notification.
    expect(returnsUserNotif(bpf([0x00, 0, 0, 0x7fc00000], [0x06, 0, 0, 0x7fff0000]))).toBe(false);
  });
});

const thread = (tid: number, seccomp?: number[]): TaskImage["threads"][number] => ({
  tid, regs: new Uint8Array(USER_REGS_SIZE), xstate: new Uint8Array(576 + 64), sigmask: 0n,
  rseq: null, tidAddress: 0, robustList: { head: 0, len: 0 }, altstack: { sp: 0, flags: 2, size: 0 },
  ...(seccomp ? { seccomp } : {}), pending: [],
});

function task(filters: TaskImage["seccompFilters"], threads: TaskImage["threads"], creds: Partial<TaskImage["creds"]> = {}): TaskImage {
  return {
    pid: 100, comm: "prog", exe: "/bin/true", cwd: "/", root: "/", umask: 0o022, personality: 0,
    creds: {
      uid: [0, 0, 0, 0], gid: [0, 0, 0, 0], groups: [], capInh: 0n, capPrm: 0n, capEff: 0n, capBnd: 0n, capAmb: 0n,
      noNewPrivs: true, ...creds,
    },
    rlimits: [], sigactions: [],
    itimers: { real: { intervalUs: 0, valueUs: 0 }, virtual: { intervalUs: 0, valueUs: 0 }, prof: { intervalUs: 0, valueUs: 0 } },
    sharedPending: [], ...(filters ? { seccompFilters: filters } : {}), threads,
    mm: {
      vmas: [], brk: 0, startBrk: 0, startCode: 0, endCode: 0, startData: 0, endData: 0, startStack: 0,
      argStart: 0, argEnd: 0, envStart: 0, envEnd: 0, auxv: new Uint8Array(16),
    },
    fds: [],
  };
}

describe("task.cbor seccomp checks", () => {
  const two = [{ insns: DENY_GETPPID, flags: 0 }, { insns: ALLOW, flags: 2 }];
  test("a valid image passes", () => {
    expect(checkSeccomp(task(two, [thread(100, [0, 1]), thread(101, [0])]))).toBeNull();
    expect(checkSeccomp(task(undefined, [thread(100)]))).toBeNull();
  });
  test("instruction counts 1..4096 of 8-byte instructions", () => {
    expect(checkSeccomp(task([{ insns: new Uint8Array(0), flags: 0 }], [thread(100, [0])]))).toContain("0 instructions");
    expect(checkSeccomp(task([{ insns: new Uint8Array(4097 * 8), flags: 0 }], [thread(100, [0])]))).toContain("4097 instructions");
    expect(checkSeccomp(task([{ insns: new Uint8Array(12), flags: 0 }], [thread(100, [0])]))).toContain("8-byte instructions");
  });
  test("unknown flags are refused", () => {
    expect(checkSeccomp(task([{ insns: ALLOW, flags: 8 }], [thread(100, [0])]))).toContain("unknown flags");
  });
  test("chains refer to existing filters, once each, with one parent per filter, and every filter is used", () => {
    expect(checkSeccomp(task(two, [thread(100, [0, 2])]))).toContain("filter 2 does not exist");
    expect(checkSeccomp(task(two, [thread(100, [0, 1, 0])]))).toContain("appears twice");
    expect(checkSeccomp(task(two, [thread(100, [0, 1]), thread(101, [1])]))).toContain("filter 1 follows -1");
    expect(checkSeccomp(task(two, [thread(100, [0])]))).toContain("used by no thread");
  });
});

describe("the plan's seccomp filters", () => {
  const filters = [{ insns: DENY_GETPPID, flags: 0 }, { insns: ALLOW, flags: 2 }, { insns: ALLOW, flags: 0 }];
  const t = task(filters, [thread(101, [0, 1, 2]), thread(100, [0, 1])]);
  const plan = buildPlan({
    pid: 100, sid: 0, pgid: 0, task: t, pagemap: { entries: [] }, sharedIndex: new Map(), shmemIndex: new Map(),
    serviceFdBase: 3, pagesPath: "/nonexistent/pages-100.img", selfMaps: [], cpu: { image: SAPPHIRE_RAPIDS, here: SAPPHIRE_RAPIDS },
  });
  const dv = new DataView(plan.buffer);
  const H = PlanHeader, T = PlanThread, F = PlanSeccompFilter;
  const u32s = (off: number, n: number) => Array.from({ length: n }, (_, i) => dv.getUint32(off + 4 * i, true));

  test("seccompLayout: the prefix all threads share, then each thread's rest", () => {
    expect(seccompLayout(t, [t.threads[1]!, t.threads[0]!])).toEqual({ filters, common: [0, 1], own: [[], [2]] });
    expect(seccompLayout(task(undefined, [thread(100)]), [thread(100)])).toEqual({ filters: [], common: [], own: [[]] });
  });
  test("every filter's instructions and flags, in the plan", () => {
    expect(dv.getUint32(H.seccomp_count, true)).toBe(3);
    const at = (i: number) => dv.getUint32(H.seccomp_off, true) + i * F.size;
    expect([0, 1, 2].map((i) => [dv.getUint32(at(i) + F.insns_count, true), dv.getUint32(at(i) + F.flags, true)])).toEqual([[4, 0], [1, 2], [1, 0]]);
    const o = dv.getUint32(at(0) + F.insns_off, true);
    expect(plan.subarray(o, o + DENY_GETPPID.length)).toEqual(DENY_GETPPID);
  });
  test("the common chain for TSYNC, the rest per thread (the main thread first)", () => {
    expect(u32s(dv.getUint32(H.seccomp_common_off, true), dv.getUint32(H.seccomp_common_count, true))).toEqual([0, 1]);
    const th = (i: number) => dv.getUint32(H.threads_off, true) + i * T.size;
    expect(dv.getInt32(th(0) + T.tid, true)).toBe(100);
    expect(dv.getUint32(th(0) + T.seccomp_count, true)).toBe(0);
    expect(u32s(dv.getUint32(th(1) + T.seccomp_off, true), dv.getUint32(th(1) + T.seccomp_count, true))).toEqual([2]);
  });
  test("CAP_SYS_ADMIN is kept for the filters only without no_new_privs and without it in the effective set", () => {
    const admin = (creds: Partial<TaskImage["creds"]>, f: TaskImage["seccompFilters"] = filters.slice(0, 1)) => {
      const p = buildPlan({
        pid: 100, sid: 0, pgid: 0, task: task(f, [thread(100, f && f.length > 0 ? [0] : undefined)], creds), pagemap: { entries: [] },
        sharedIndex: new Map(), shmemIndex: new Map(), serviceFdBase: 3, pagesPath: "/x", selfMaps: [], cpu: { image: SAPPHIRE_RAPIDS, here: SAPPHIRE_RAPIDS },
      });
      return new DataView(p.buffer).getUint32(H.seccomp_admin, true);
    };
    expect(admin({ noNewPrivs: true })).toBe(0);
    expect(admin({ noNewPrivs: false, capEff: 1n << 21n })).toBe(0);
    expect(admin({ noNewPrivs: false, capEff: 0n })).toBe(1);
    expect(admin({ noNewPrivs: false, capEff: 0n }, [])).toBe(0);
  });
});

// The ONLY module that imports bun:ffi. It loads libcr (embedded in dist/cr),
// declares every symbol once, and wraps each call so that a -errno result
// becomes a CrError carrying errno, operation, pid and libcr's detail string.
import { dlopen, FFIType, ptr } from "bun:ffi";
import { readFileSync } from "node:fs";
import { CrError } from "../errors.ts";
import * as abi from "./abi.ts";
import { embedded } from "./embedded.ts";
import { dlopenFromMemory } from "./load.ts";

const { i32, u32, u64, ptr: P } = FFIType;
const usize = u64;

const symbols = {
  cr_abi_layout: { args: [P], returns: FFIType.void },
  cr_last_error: { args: [P, usize], returns: usize },
  cr_check: { args: [P], returns: i32 },
  cr_set_child_subreaper: { args: [], returns: i32 },
  cr_seize: { args: [i32], returns: i32 },
  cr_retrap: { args: [i32], returns: i32 },
  cr_detach: { args: [i32, i32], returns: i32 },
  cr_kill: { args: [i32, i32], returns: i32 },
  cr_read_thread: { args: [i32, P], returns: i32 },
  cr_suspend_seccomp: { args: [i32], returns: i32 },
  cr_seccomp_filter: { args: [i32, u32, P, usize, P], returns: i32 },
  cr_peek_siginfo: { args: [i32, i32, P, u32], returns: i32 },
  cr_run_parasite: { args: [P, u32, P, P, usize, P, u32, P, P], returns: i32 },
  cr_find_gadgets: { args: [i32, P, u32, P], returns: i32 },
  cr_dump_pages_start: { args: [i32, P, P, usize, P, u32, P, u32, u64, u32, u32, i32, P], returns: i32 },
  cr_dump_pages_finish: { args: [u64, P], returns: i32 },
  cr_dump_pages_written: { args: [u64], returns: u64 },
  cr_copy_pages: { args: [i32, P, u32, P], returns: i32 },
  cr_copy_nonzero_pages: { args: [i32, i32, u64, P, u32, P, P], returns: i32 },
  cr_hold_stop_signals: { args: [], returns: i32 },
  cr_stop_signal: { args: [], returns: u32 },
  cr_release_stop_signals: { args: [], returns: u32 },
  cr_hash_fd: { args: [i32, P], returns: i32 },
  cr_scan_pages: { args: [i32, P, u32, u64, P, u32, P], returns: i32 },
  cr_unmap_remote: { args: [P, u32, P, u64, u64, P], returns: i32 },
  cr_cpu_xstate: { args: [P], returns: FFIType.void },
  cr_restore_tree: { args: [P, usize, P, usize, P, P], returns: i32 },
  cr_open_file: { args: [P, u32, u32, u64, i32], returns: i32 },
  cr_make_pipe: { args: [u32, P, usize, i32, P], returns: i32 },
  cr_make_memfd: { args: [P, u64, i32], returns: i32 },
  cr_set_fl: { args: [i32, u32], returns: i32 },
  cr_close: { args: [i32], returns: i32 },
  cr_same_file: { args: [i32, i32, i32, i32], returns: i32 },
  cr_peek_pipe: { args: [i32, P, usize, P], returns: i32 },
  cr_restore_status: { args: [i32, P], returns: i32 },
  cr_restore_status_ready: { args: [i32, i32], returns: i32 },
  cr_wait: { args: [i32, P, i32], returns: i32 },
  cr_fill_fifo: { args: [i32, u32, P, usize], returns: i32 },
  cr_make_eventfd: { args: [u64, u32, i32], returns: i32 },
  cr_make_timerfd: { args: [u32, u32, u64, u64, u64, i32], returns: i32 },
  cr_make_signalfd: { args: [u64, i32], returns: i32 },
  cr_make_epoll: { args: [i32], returns: i32 },
  cr_epoll_target_is: { args: [i32, i32, i32, u32], returns: i32 },
  cr_open_by_handle: { args: [i32, i32, P, u32], returns: i32 },
  cr_make_inotify: { args: [i32], returns: i32 },
  cr_inotify_watch: { args: [i32, P, u32, i32, i32], returns: i32 },
  cr_termios: { args: [i32, P, usize, u32], returns: i32 },
  cr_unix_diag: { args: [u32, P], returns: i32 },
  cr_grab_fd: { args: [i32, i32], returns: i32 },
  cr_sock_opts: { args: [i32, P], returns: i32 },
  cr_unix_peek: { args: [i32, u32, u32, P, usize, P, u32, P], returns: i32 },
  cr_unix_pair: { args: [u32, i32, P], returns: i32 },
  cr_unix_fill: { args: [i32, P, usize, P, u32], returns: i32 },
  cr_unix_finish: { args: [i32, u32, u32], returns: i32 },
  cr_unix_socket: { args: [u32, P, usize, u32, u32, i32], returns: i32 },
  cr_inet_diag: { args: [u32, u32, P], returns: i32 },
  cr_inet_opts: { args: [i32, u32], returns: i32 },
  cr_inet_listen: { args: [u32, P, usize, u32, u32, u32, i32], returns: i32 },
  cr_set_foreground: { args: [i32, i32], returns: i32 },
} as const;

type Lib = ReturnType<typeof dlopen<typeof symbols>>["symbols"];
let lib: Lib | undefined;

function native(): Lib {
  if (!lib) {
    const l = dlopenFromMemory(embedded.libPath, symbols).symbols;
    checkAbi(l);
    lib = l;
  }
  return lib;
}

/**
 * libcr and this mirror of zig/abi must agree on every shared layout, or
 * every buffer crossing the boundary would be misread: checked once, when
 * libcr loads, so a mismatched build never runs.
 */
function checkAbi(l: Lib): void {
  const got = readLayout(l);
  const bad = abi.LAYOUT_FIELDS.find((f) => got[f] !== abi.EXPECTED_LAYOUT[f]);
  if (bad !== undefined) {
    throw new CrError("load libcr", `libcr was built for another ABI (${bad} is ${got[bad]}, this cr expects ${abi.EXPECTED_LAYOUT[bad]}): rebuild dist/cr`);
  }
}

function readLayout(l: Lib): Record<string, number> {
  const buf = new Uint32Array(abi.LAYOUT_FIELDS.length);
  l.cr_abi_layout(ptr(buf));
  const out: Record<string, number> = {};
  abi.LAYOUT_FIELDS.forEach((f, i) => (out[f] = buf[i] ?? -1));
  return out;
}

let blobs: { parasite: Uint8Array; restorer: Uint8Array } | undefined;
export function nativeBlobs(): { parasite: Uint8Array; restorer: Uint8Array } {
  blobs ??= {
    parasite: new Uint8Array(readFileSync(embedded.parasitePath)),
    restorer: new Uint8Array(readFileSync(embedded.restorerPath)),
  };
  return blobs;
}

function lastError(): string {
  const buf = new Uint8Array(512);
  const n = Number(native().cr_last_error(ptr(buf), buf.length));
  return new TextDecoder().decode(buf.subarray(0, n));
}

/** Turn a libcr return value into a CrError when it is -errno. */
function checked(rc: number, op: string, pid?: number): number {
  if (rc >= 0) return rc;
  const detail = lastError() || "failed";
  throw new CrError(op, `${detail} (${errnoName(-rc)})`, { errno: -rc, ...(pid === undefined ? {} : { pid }) });
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 9: "EBADF", 11: "EAGAIN", 12: "ENOMEM",
  13: "EACCES", 14: "EFAULT", 16: "EBUSY", 17: "EEXIST", 22: "EINVAL", 25: "ENOTTY", 34: "ERANGE", 38: "ENOSYS",
  71: "EPROTO", 74: "EBADMSG", 95: "EOPNOTSUPP", 98: "EADDRINUSE", 110: "ETIMEDOUT", 111: "ECONNREFUSED",
  116: "ESTALE", 7: "E2BIG",
};
export function errnoName(e: number): string {
  return ERRNO_NAMES[e] ?? `errno ${e}`;
}

// ---------------------------------------------------------------------------

/** libcr's own idea of the shared layouts (the load already compared them). */
export function abiLayout(): Record<string, number> {
  return readLayout(native());
}

/** This CPU's user XSAVE layout (see abi.CpuXstate and src/xstate.ts). */
export interface CpuXstateRaw {
  xcr0: bigint;
  size: number;
  /** By feature bit; 0 for a feature the CPU does not have (and for x87, SSE). */
  offsets: number[];
  sizes: number[];
}

export function cpuXstate(): CpuXstateRaw {
  const buf = new Uint8Array(abi.CpuXstate.size);
  native().cr_cpu_xstate(ptr(buf));
  const dv = new DataView(buf.buffer);
  const u32s = (o: number) => Array.from({ length: abi.XFEATURES }, (_, i) => dv.getUint32(o + i * 4, true));
  return {
    xcr0: dv.getBigUint64(abi.CpuXstate.xcr0, true),
    size: dv.getUint32(abi.CpuXstate.size_, true),
    offsets: u32s(abi.CpuXstate.offsets),
    sizes: u32s(abi.CpuXstate.sizes),
  };
}

export type CheckResults = Record<abi.CheckField, number>;
export function runProbes(): CheckResults {
  const buf = new Int32Array(abi.CHECK_REPORT_SIZE / 4);
  checked(native().cr_check(ptr(buf)), "check");
  const out = {} as CheckResults;
  abi.CHECK_FIELDS.forEach((f, i) => (out[f] = buf[i] ?? 0));
  return out;
}

export function setChildSubreaper(): void {
  checked(native().cr_set_child_subreaper(), "prctl");
}

/** Note SIGHUP, SIGINT, SIGQUIT and SIGTERM instead of dying of them (see zig/lib/interrupt.zig). */
export function holdStopSignals(): void {
  checked(native().cr_hold_stop_signals(), "signals");
}

/** The stop signal noted since holdStopSignals (0: none). */
export function stopSignal(): number {
  return native().cr_stop_signal();
}

/** Back to the old actions; the stop signal noted meanwhile (0: none). */
export function releaseStopSignals(): number {
  return native().cr_release_stop_signals();
}

/** Freeze `tid`; true when it was in a job-control stop (see retrap). */
export function seize(tid: number): boolean {
  return checked(native().cr_seize(tid), "freeze", tid) === 1;
}

/** After SIGCONT lifted its job-control stop: bring seized `tid` to a stop where it can run injected code. */
export function retrap(tid: number): void {
  checked(native().cr_retrap(tid), "freeze", tid);
}

export function detach(tid: number, sig = 0): void {
  checked(native().cr_detach(tid, sig), "detach", tid);
}

export function kill(pid: number, sig: number): void {
  checked(native().cr_kill(pid, sig), "kill", pid);
}

export interface ThreadRaw {
  tid: number;
  regs: Uint8Array;
  xstate: Uint8Array;
  sigmask: bigint;
  rseq: { ptr: number; len: number; sig: number } | null;
  robustList: { head: number; len: number };
}

export function readThread(tid: number): ThreadRaw {
  const buf = new Uint8Array(abi.ThreadState.size);
  checked(native().cr_read_thread(tid, ptr(buf)), "read registers", tid);
  return decodeThreadState(buf, tid);
}

/** One abi.ThreadState of `buf` (at `at`). */
function decodeThreadState(all: Uint8Array, tid: number, at = 0): ThreadRaw {
  const buf = all.subarray(at, at + abi.ThreadState.size);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const xlen = dv.getUint32(abi.ThreadState.xstate_len, true);
  const rseqPtr = Number(dv.getBigUint64(abi.ThreadState.rseq_ptr, true));
  return {
    tid,
    regs: buf.slice(abi.ThreadState.regs, abi.ThreadState.regs + abi.USER_REGS_SIZE),
    xstate: buf.slice(abi.ThreadState.xstate, abi.ThreadState.xstate + xlen),
    sigmask: dv.getBigUint64(abi.ThreadState.sigmask, true),
    rseq: rseqPtr === 0 ? null : {
      ptr: rseqPtr,
      len: dv.getUint32(abi.ThreadState.rseq_len, true),
      sig: dv.getUint32(abi.ThreadState.rseq_sig, true),
    },
    robustList: {
      head: Number(dv.getBigUint64(abi.ThreadState.robust_head, true)),
      len: Number(dv.getBigUint64(abi.ThreadState.robust_len, true)),
    },
  };
}

/** Seized `tid`'s seccomp filters stop applying to what cr injects into it (until the detach). */
export function suspendSeccomp(tid: number): void {
  checked(native().cr_suspend_seccomp(tid), "freeze", tid);
}

/** One seccomp filter as the kernel holds it: struct sock_filter records (8 bytes each) and its flags. */
export interface SeccompFilterRaw {
  insns: Uint8Array;
  flags: number;
}

/** Most classic BPF instructions of one filter (BPF_MAXINSNS). */
export const SECCOMP_MAX_INSNS = 4096;
/** Most filters cr reads of one thread: the kernel's own limit on a chain is 32768 instructions in all. */
const MAX_SECCOMP_CHAIN = 4096;

/**
 * Seized `tid`'s seccomp filters, the first installed first: the kernel's
 * index 0 is the oldest filter of the chain (get_nth_filter counts back from
 * the newest by chain length - index).
 */
export function readSeccompChain(tid: number): SeccompFilterRaw[] {
  const buf = new Uint8Array(SECCOMP_MAX_INSNS * 8);
  const flags = new BigUint64Array(1);
  const out: SeccompFilterRaw[] = [];
  for (let index = 0; index < MAX_SECCOMP_CHAIN; index++) {
    const n = native().cr_seccomp_filter(tid, index, ptr(buf), buf.length, ptr(flags));
    if (n === -2) return out;
    checked(n, "read seccomp filters", tid);
    out.push({ insns: buf.slice(0, n * 8), flags: Number(flags[0]!) });
  }
  throw new CrError("read seccomp filters", `more than ${MAX_SECCOMP_CHAIN} seccomp filters`, { pid: tid });
}

/** Queued signals of a stopped thread (or of its process when shared), as raw siginfo records. */
export function peekPendingSignals(tid: number, shared: boolean): Uint8Array[] {
  const max = 256;
  const buf = new Uint8Array(max * abi.SIGINFO_SIZE);
  const n = checked(native().cr_peek_siginfo(tid, shared ? 1 : 0, ptr(buf), max), "read pending signals", tid);
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) out.push(buf.slice(i * abi.SIGINFO_SIZE, (i + 1) * abi.SIGINFO_SIZE));
  return out;
}

export interface ThreadExtra {
  tid: number;
  /** prctl(PR_GET_PDEATHSIG): 0 for none. */
  pdeathSig: number;
  altstack: { sp: number; flags: number; size: number };
  tidAddress: number;
}

export interface ParasiteResult {
  sigactions: { sig: number; handler: number; flags: number; restorer: number; mask: bigint }[];
  itimers: { intervalUs: number; valueUs: number }[];
  /** In the order of `timerIds`. */
  posixTimers: { intervalNs: bigint; valueNs: bigint; overrun: number }[];
  /** prctl(PR_GET_DUMPABLE). */
  dumpable: number;
  /** arch_prctl(ARCH_GET_XCOMP_PERM): the xstate features the process may use (0: the kernel cannot tell). */
  xcompPerm: bigint;
  brk: number;
  /** One per thread, in the order of `tids`. */
  threads: ThreadExtra[];
}

function tidArray(tids: number[]): Int32Array {
  if (tids.length === 0 || tids.length > abi.MAX_THREADS) throw new CrError("threads", `${tids.length} threads: not in 1..${abi.MAX_THREADS}`);
  return Int32Array.from(tids);
}

/**
 * Run the parasite in frozen task `tids[0]` (its main thread): process-wide
 * state and POSIX timers `timerIds`; and ask every thread of `tids` what only
 * it can tell.
 */
export function runParasite(tids: number[], site: Uint8Array, timerIds: number[]): ParasiteResult {
  if (timerIds.length > abi.MAX_POSIX_TIMERS) {
    throw new CrError("dump", `unsupported: ${timerIds.length} POSIX timers (at most ${abi.MAX_POSIX_TIMERS})`, { pid: tids[0] });
  }
  const out = new Uint8Array(abi.ParasiteState.size);
  const extras = new Uint8Array(abi.ThreadExtra.size * tids.length);
  const blob = nativeBlobs().parasite;
  const t = tidArray(tids);
  const timers = Int32Array.from(timerIds.length ? timerIds : [0]);
  checked(native().cr_run_parasite(ptr(t), t.length, ptr(site), ptr(blob), blob.length,
    ptr(timers), timerIds.length, ptr(out), ptr(extras)), "parasite", tids[0]);
  const dv = new DataView(out.buffer);
  const u64 = (off: number) => Number(dv.getBigUint64(off, true));
  const sigactions = [];
  for (let i = 0; i < abi.NSIG; i++) {
    const o = abi.ParasiteState.sigactions + i * abi.KSIGACTION_SIZE;
    sigactions.push({ sig: i + 1, handler: u64(o), flags: u64(o + 8), restorer: u64(o + 16), mask: dv.getBigUint64(o + 24, true) });
  }
  const itimers = [];
  for (let i = 0; i < 3; i++) {
    const o = abi.ParasiteState.itimers + i * abi.ITIMERVAL_SIZE;
    itimers.push({ intervalUs: u64(o) * 1e6 + u64(o + 8), valueUs: u64(o + 16) * 1e6 + u64(o + 24) });
  }
  const xv = new DataView(extras.buffer);
  const threads = tids.map((_, i) => {
    const o = i * abi.ThreadExtra.size;
    const a = o + abi.ThreadExtra.altstack;
    return {
      tid: xv.getInt32(o + abi.ThreadExtra.tid, true),
      pdeathSig: xv.getInt32(o + abi.ThreadExtra.pdeath_sig, true),
      altstack: { sp: Number(xv.getBigUint64(a, true)), flags: xv.getInt32(a + 8, true), size: Number(xv.getBigUint64(a + 16, true)) },
      tidAddress: Number(xv.getBigUint64(o + abi.ThreadExtra.tid_address, true)),
    };
  });
  const ns = (o: number) => dv.getBigInt64(o, true) * 1_000_000_000n + dv.getBigInt64(o + 8, true);
  const posixTimers = timerIds.map((_, i) => {
    const o = abi.ParasiteState.posix_timers + i * abi.POSIX_TIMER_STATE_SIZE;
    return { intervalNs: ns(o), valueNs: ns(o + 16), overrun: dv.getInt32(o + abi.ITIMERSPEC_SIZE, true) };
  });
  return {
    sigactions, itimers, posixTimers, brk: u64(abi.ParasiteState.brk), dumpable: u64(abi.ParasiteState.dumpable),
    xcompPerm: dv.getBigUint64(abi.ParasiteState.xcomp_perm, true), threads,
  };
}

/** Runs per cr_scan_pages call (16 bytes each); a dump with more takes several calls. */
const SCAN_RUNS = 1 << 16;

/**
 * The runs of pages of `vmas` (in address order) that hold something their
 * backing does not: present or swapped pages, and in `anonOnly` VMAs (private
 * file mappings) only the private copies. Runs never span two VMAs.
 */
export function scanPages(pid: number, vmas: { start: number; end: number; anonOnly: boolean }[]): { addr: number; len: number }[] {
  const runs: { addr: number; len: number }[] = [];
  if (vmas.length === 0) return runs;
  const buf = new Uint8Array(vmas.length * abi.ScanVma.size);
  const dv = new DataView(buf.buffer);
  vmas.forEach((v, i) => {
    const o = i * abi.ScanVma.size;
    dv.setBigUint64(o + abi.ScanVma.start, BigInt(v.start), true);
    dv.setBigUint64(o + abi.ScanVma.end, BigInt(v.end), true);
    dv.setUint32(o + abi.ScanVma.anon_only, v.anonOnly ? 1 : 0, true);
  });
  const out = new BigUint64Array(SCAN_RUNS * 2);
  const next = new BigUint64Array(1);
  let from = 0n;
  for (;;) {
    const n = checked(native().cr_scan_pages(pid, ptr(buf), vmas.length, from, ptr(out), SCAN_RUNS, ptr(next)), "scan pages", pid);
    for (let i = 0; i < n; i++) runs.push({ addr: Number(out[2 * i]), len: Number(out[2 * i + 1]) });
    if (next[0] === 0n) return runs;
    from = next[0]!;
  }
}

export interface Digest {
  bytes: number;
  /** XXH3-128, lower-case hex of the canonical (big-endian) form, as xxh128sum prints it. */
  hash: string;
}

function readDigest(out: Uint8Array): Digest {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  return {
    bytes: Number(dv.getBigUint64(abi.Digest.bytes, true)),
    hash: Buffer.from(out.subarray(abi.Digest.hash, abi.Digest.hash + abi.Digest.hashLen)).toString("hex"),
  };
}

/** A page dump under way (the parasite in the task, libcr's splicer thread); finish() or abort() must follow, once. */
export interface PagesJob {
  /** Bytes in the image so far (a progress figure). */
  written(): number;
  /** Wait for it and cure the task: how many bytes were sent and their XXH3-128. */
  finish(): Digest;
  /** The same, for a dump that failed elsewhere: the task is cured, errors are dropped. */
  abort(): void;
}

/** abi.PageRange records (or abi.ProtRange ones, with `prot`): all u64 fields. */
function rangeArray(ranges: { addr: number; len: number; prot?: number }[], fields: 2 | 3 = 2): BigUint64Array {
  const buf = new BigUint64Array(Math.max(1, ranges.length) * fields);
  ranges.forEach((r, i) => {
    buf[fields * i] = BigInt(r.addr);
    buf[fields * i + 1] = BigInt(r.len);
    if (fields === 3) buf[fields * i + 2] = BigInt(r.prot ?? 0);
  });
  return buf;
}

/**
 * Start dumping `ranges` ([addr, len] pairs) of frozen task `pid` (its main
 * thread, as the parasite left it) into `fd`, which must stay open until the
 * job ends; `unreadable` are the VMAs without PROT_READ that hold some of
 * them (with their prot); `rseq` the main thread's rseq registration (off
 * while the parasite runs); injected code runs through `site` (inject-site.ts).
 */
export function startDumpPages(pid: number, site: Uint8Array, ranges: { addr: number; len: number }[],
  unreadable: { addr: number; len: number; prot: number }[], rseq: { ptr: number; len: number; sig: number } | null, fd: number): PagesJob {
  // libcr copies both lists into the task: these arrays may go once the call returns.
  const buf = rangeArray(ranges);
  const prot = rangeArray(unreadable, 3);
  const blob = nativeBlobs().parasite;
  const handle = new BigUint64Array(1);
  checked(native().cr_dump_pages_start(pid, ptr(site), ptr(blob), blob.length, ptr(buf), ranges.length,
    ptr(prot), unreadable.length, BigInt(rseq?.ptr ?? 0), rseq?.len ?? 0, rseq?.sig ?? 0, fd, ptr(handle)), "dump pages", pid);
  let open = true;
  const end = (): Digest => {
    if (!open) throw new CrError("dump pages", "the page dump was already waited for", { pid });
    open = false;
    const out = new Uint8Array(abi.Digest.size);
    checked(native().cr_dump_pages_finish(handle[0]!, ptr(out)), "dump pages", pid);
    return readDigest(out);
  };
  return {
    written: () => (open ? Number(native().cr_dump_pages_written(handle[0]!)) : 0),
    finish: end,
    abort: () => {
      try {
        end();
      } catch {
        // Either way it is over, and the caller has an error of its own.
      }
    },
  };
}

/**
 * An abi.InjectSite of `pid` with the `syscall; ret` and rt_sigreturn code
 * found in the executable `ranges` (searched in order); stack fields 0.
 */
export function findGadgets(pid: number, ranges: { addr: number; len: number }[]): Uint8Array {
  const site = new Uint8Array(abi.InjectSite.size);
  const buf = rangeArray(ranges);
  checked(native().cr_find_gadgets(pid, ptr(buf), ranges.length, ptr(site)), "inject", pid);
  return site;
}

/** The benchmark's raw copy: `ranges` of `pid` read with process_vm_readv and thrown away; the bytes copied. */
export function copyPages(pid: number, ranges: { addr: number; len: number }[]): number {
  const bytes = new BigUint64Array(1);
  checked(native().cr_copy_pages(pid, ptr(rangeArray(ranges)), ranges.length, ptr(bytes)), "copy pages", pid);
  return Number(bytes[0]);
}

/**
 * Copy the non-zero pages of the first `size` bytes of `src` into `out`
 * (from its position), back to back, a last partial page zero-padded: where
 * each run of them went, and the digest of what was written.
 */
export function copyNonZeroPages(src: number, out: number, size: number): { pages: { start: number; pages: number; offset: number }[]; digest: Digest } {
  // The most runs there can be: every other page, and a partial last one.
  const cap = Math.floor(size / 8192) + 2;
  const runs = new BigUint64Array(cap * 3);
  const count = new Uint32Array(1);
  const out8 = new Uint8Array(abi.Digest.size);
  checked(native().cr_copy_nonzero_pages(src, out, BigInt(size), ptr(runs), cap, ptr(count), ptr(out8)), "copy pages");
  const pages = [];
  for (let i = 0; i < count[0]!; i++) pages.push({ start: Number(runs[3 * i]), pages: Number(runs[3 * i + 1]), offset: Number(runs[3 * i + 2]) });
  return { pages, digest: readDigest(out8) };
}

/** Read `fd` from its position to EOF: how many bytes and their XXH3-128. */
export function hashFd(fd: number): Digest {
  const out = new Uint8Array(abi.Digest.size);
  checked(native().cr_hash_fd(fd, ptr(out)), "hash");
  return readDigest(out);
}

/** munmap [addr, addr+len) inside restored task `tids[0]`, all of whose threads `tids` cr holds (seized), once each has left it; then let them go. */
/**
 * Unmap [addr, addr+len) in a restored task whose threads `tids` (main
 * thread first) cr seized at the go barrier, once each has left it; returns
 * every thread's state as its rt_sigreturn left it, read before it ran any
 * code of its own. The threads stay seized (detach lets them go).
 */
export function unmapRemote(tids: number[], site: Uint8Array, addr: number, len: number): ThreadRaw[] {
  const t = tidArray(tids);
  const back = new Uint8Array(abi.ThreadState.size * tids.length);
  checked(native().cr_unmap_remote(ptr(t), t.length, ptr(site), BigInt(addr), BigInt(len), ptr(back)), "restore cleanup", tids[0]);
  return tids.map((tid, i) => decodeThreadState(back, tid, i * abi.ThreadState.size));
}

export interface SpawnResult {
  pid: number;
  statusFd: number;
  /** Write end of the go pipe: closing it lets every (ready) task of the tree run. */
  goFd: number;
}

/** Create the tree described by `tree` (abi.TreeHeader + tables + plans); returns the root. */
export function restoreTree(tree: Uint8Array, rootPid: number): SpawnResult {
  const blob = nativeBlobs().restorer;
  const rfd = new Int32Array(1);
  const gfd = new Int32Array(1);
  const got = checked(native().cr_restore_tree(ptr(tree), tree.length, ptr(blob), blob.length, ptr(rfd), ptr(gfd)), "restore", rootPid);
  return { pid: got, statusFd: rfd[0] ?? -1, goFd: gfd[0] ?? -1 };
}

const cstr = (s: string) => new TextEncoder().encode(s + "\0");

/** open(path, flags) at `pos`, placed at a number >= minFd (close-on-exec in cr). */
export function openFile(path: string, flags: number, pos: number, minFd: number): number {
  return checked(native().cr_open_file(ptr(cstr(path)), flags, 0, BigInt(pos), minFd), "restore files");
}

/** A pipe of at least `size` bytes already holding `data`: [read end, write end], both >= minFd. */
export function makePipe(size: number, data: Uint8Array, minFd: number): [number, number] {
  const out = new Int32Array(2);
  const d = data.length ? data : new Uint8Array(1);
  checked(native().cr_make_pipe(size, ptr(d), data.length, minFd, ptr(out)), "restore pipes");
  return [out[0]!, out[1]!];
}

/** A memfd of `size` bytes named `name` (the "memfd:" prefix is the kernel's), at a number >= minFd. */
export function makeMemfd(name: string, size: number, minFd: number): number {
  return checked(native().cr_make_memfd(ptr(cstr(name)), BigInt(size), minFd), "restore shared memory");
}

export function setFileFlags(fd: number, flags: number): void {
  checked(native().cr_set_fl(fd, flags), "restore files");
}

export function closeFd(fd: number): void {
  native().cr_close(fd);
}

/** kcmp(KCMP_FILE): true when the two fds are one open file description. */
export function sameFile(pid1: number, fd1: number, pid2: number, fd2: number): boolean {
  return checked(native().cr_same_file(pid1, fd1, pid2, fd2), "kcmp", pid1) === 0;
}

/** The bytes buffered in a pipe, read without consuming them, and its capacity. */
export function peekPipe(fd: number, pid: number): { data: Uint8Array; size: number } {
  const buf = new Uint8Array(1 << 20);
  const size = new Uint32Array(1);
  const n = checked(native().cr_peek_pipe(fd, ptr(buf), buf.length, ptr(size)), "dump pipe", pid);
  return { data: buf.slice(0, n), size: size[0]! };
}

/** Put `data` back into the named FIFO that `fd` (cr's O_RDWR description of it) is open on, growing it to `size`. */
export function fillFifo(fd: number, size: number, data: Uint8Array): void {
  const d = data.length ? data : new Uint8Array(1);
  checked(native().cr_fill_fifo(fd, size, ptr(d), data.length), "restore FIFOs");
}

/** An eventfd holding `count` (EFD_SEMAPHORE when `semaphore`), at a number >= minFd, non-blocking. */
export function makeEventfd(count: bigint, semaphore: boolean, minFd: number): number {
  return checked(native().cr_make_eventfd(count, semaphore ? 1 : 0, minFd), "restore eventfd");
}

export interface TimerfdSpec {
  clockid: number;
  settimeFlags: number;
  valueNs: bigint;
  intervalNs: bigint;
  ticks: bigint;
}

/** A timerfd re-armed with the time it had left (see zig/lib/fdkinds.zig), at a number >= minFd, non-blocking. */
export function makeTimerfd(t: TimerfdSpec, minFd: number): number {
  return checked(native().cr_make_timerfd(t.clockid, t.settimeFlags, t.valueNs, t.intervalNs, t.ticks, minFd), "restore timerfd");
}

/** A signalfd for the signals of `mask`, at a number >= minFd, non-blocking. */
export function makeSignalfd(mask: bigint, minFd: number): number {
  return checked(native().cr_make_signalfd(mask, minFd), "restore signalfd");
}

/** An empty epoll instance at a number >= minFd. */
export function makeEpoll(minFd: number): number {
  return checked(native().cr_make_epoll(minFd), "restore epoll");
}

/** An O_PATH fd (close-on-exec) on the object of file handle (`type`, `bytes`) of the filesystem `mountFd` is on. */
export function openByHandle(mountFd: number, type: number, bytes: Uint8Array, pid: number): number {
  return checked(native().cr_open_by_handle(mountFd, type, ptr(bytes), bytes.length), "dump inotify", pid);
}

/** A new inotify instance without watches, at a number >= minFd, non-blocking. */
export function makeInotify(minFd: number): number {
  return checked(native().cr_make_inotify(minFd), "restore inotify");
}

/**
 * Watch `path` with `mask` as wd `wd` in inotify instance `fd`, whose highest
 * wd so far is `placed` (0: none); see zig/lib/inotify.zig.
 */
export function addInotifyWatch(fd: number, path: string, mask: number, wd: number, placed: number): void {
  checked(native().cr_inotify_watch(fd, ptr(cstr(path)), mask, wd, placed), "restore inotify");
}

/**
 * kcmp(KCMP_EPOLL_TFD): whether fd `tfd` of `pid` is the file that epoll
 * `epfd` of `pid` registered (its `toff`-th registration under that number).
 * False too when `tfd` is not open or there is no such registration.
 */
export function epollTargetIs(pid: number, epfd: number, tfd: number, toff: number): boolean {
  const rc = native().cr_epoll_target_is(pid, epfd, tfd, toff);
  if (rc === -2 || rc === -9) return false; // ENOENT, EBADF
  return checked(rc, "kcmp", pid) === 0;
}

/** null when every task is ready (waiting for the go pipe), else the failure one reported. */
/** Whether restoreStatus would return at once (a failure reported, or every task ready), waiting up to `ms`. */
export function restoreStatusReady(statusFd: number, ms: number, pid: number): boolean {
  return checked(native().cr_restore_status_ready(statusFd, ms), "restore", pid) === 1;
}

export function restoreStatus(statusFd: number, pid: number): { err: number; step: number; index: number; pid: number } | null {
  const rec = new Uint8Array(abi.StatusRecord.size);
  const rc = checked(native().cr_restore_status(statusFd, ptr(rec)), "restore", pid);
  if (rc === 0) return null;
  const dv = new DataView(rec.buffer);
  return {
    err: Number(dv.getBigInt64(abi.StatusRecord.err, true)),
    step: dv.getUint32(abi.StatusRecord.step, true),
    index: dv.getUint32(abi.StatusRecord.index, true),
    pid: dv.getInt32(abi.StatusRecord.pid, true),
  };
}

export const WNOHANG = 1;
export const WUNTRACED = 2;
/** wait4 on a child; returns {pid: 0} under WNOHANG when it has not changed state. */
export function wait(pid: number, flags = 0): { pid: number; status: number } {
  const st = new Int32Array(1);
  const got = checked(native().cr_wait(pid, ptr(st), flags), "wait", pid);
  return { pid: got, status: st[0] ?? 0 };
}

/** The modes of terminal `fd` (TCGETS). */
export function getTermios(fd: number): Uint8Array {
  const t = new Uint8Array(abi.TERMIOS_SIZE);
  checked(native().cr_termios(fd, ptr(t), t.length, 0), "terminal");
  return t;
}

/** Set the modes of terminal `fd` (TCSETS; never stopped by SIGTTOU). */
export function setTermios(fd: number, t: Uint8Array): void {
  checked(native().cr_termios(fd, ptr(t), t.length, 1), "terminal");
}

/** tcsetpgrp(fd, pgid) (never stopped by SIGTTOU). */
export function setForeground(fd: number, pgid: number): void {
  checked(native().cr_set_foreground(fd, pgid), "terminal", pgid);
}

// ---------------------------------------------------------------------------
// Sockets (zig/lib/unixdiag.zig, zig/lib/unixsk.zig)

export interface UnixDiag {
  ino: number;
  /** SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5. */
  type: number;
  /** TCP_ESTABLISHED 1, TCP_CLOSE 7, TCP_LISTEN 10. */
  state: number;
  /** The peer's inode (0: closed since), or null without a peer. */
  peer: number | null;
  /** RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2. */
  shutdown: number;
  /** Listening: connections waiting and the backlog; else bytes to read (DGRAM: first message) and bytes unread by the peer. */
  rqueue: number;
  wqueue: number;
  /** The bound address (sun_path bytes, abstract when it starts with 0), or null. */
  name: Uint8Array | null;
}

/** sock_diag's view of unix socket `ino`; null when no unix socket has that inode (another family's socket). */
export function unixDiag(ino: number, pid: number): UnixDiag | null {
  const buf = new Uint8Array(abi.UnixDiag.size);
  const rc = native().cr_unix_diag(ino, ptr(buf));
  if (rc === -2) return null; // ENOENT
  checked(rc, "sock_diag", pid);
  const dv = new DataView(buf.buffer);
  const u32 = (o: number) => dv.getUint32(o, true);
  const nameLen = u32(abi.UnixDiag.name_len);
  return {
    ino: u32(abi.UnixDiag.ino), type: u32(abi.UnixDiag.type), state: u32(abi.UnixDiag.state),
    peer: u32(abi.UnixDiag.has_peer) ? u32(abi.UnixDiag.peer) : null,
    shutdown: u32(abi.UnixDiag.shutdown), rqueue: u32(abi.UnixDiag.rqueue), wqueue: u32(abi.UnixDiag.wqueue),
    name: nameLen ? buf.slice(abi.UnixDiag.name, abi.UnixDiag.name + nameLen) : null,
  };
}

/** A copy in cr of fd `fd` of task `pid` (pidfd_getfd: same open file description); close it with closeFd. */
export function grabFd(pid: number, fd: number): number {
  return checked(native().cr_grab_fd(pid, fd), "pidfd_getfd", pid);
}

export interface SockOpts {
  domain: number;
  type: number;
  protocol: number;
  /** SO_SNDBUF as getsockopt shows it. */
  sndbuf: number;
}

export function sockOpts(fd: number, pid: number): SockOpts {
  const buf = new Int32Array(abi.SockOpts.size / 4);
  checked(native().cr_sock_opts(fd, ptr(buf)), "getsockopt", pid);
  return {
    domain: buf[abi.SockOpts.domain / 4]!, type: buf[abi.SockOpts.type / 4]!,
    protocol: buf[abi.SockOpts.protocol / 4]!, sndbuf: buf[abi.SockOpts.sndbuf / 4]!,
  };
}

/** Most bytes and messages one socket's queue may hold for a dump. */
const PEEK_BYTES = 8 << 20;
const PEEK_MESSAGES = 1 << 16;

/** Buffers for peekQueue, made once: a dump may peek many sockets. */
let peekBufs: { buf: Uint8Array; lens: Uint32Array } | undefined;

/** The receive queue of socket `fd` (a copy of a frozen task's), not consumed: messages, or runs of a stream's bytes. */
export function peekQueue(fd: number, type: number, shutdown: number, pid: number): Uint8Array[] {
  peekBufs ??= { buf: new Uint8Array(PEEK_BYTES), lens: new Uint32Array(PEEK_MESSAGES) };
  const { buf, lens } = peekBufs;
  const count = new Uint32Array(1);
  checked(native().cr_unix_peek(fd, type, shutdown, ptr(buf), buf.length, ptr(lens), lens.length, ptr(count)), "peek socket queue", pid);
  const out: Uint8Array[] = [];
  let off = 0;
  for (let i = 0; i < count[0]!; i++) {
    out.push(buf.slice(off, off + lens[i]!));
    off += lens[i]!;
  }
  return out;
}

/** A connected unix socket pair of `type` at numbers >= minFd, non-blocking. */
export function makeSocketPair(type: number, minFd: number): [number, number] {
  const out = new Int32Array(2);
  checked(native().cr_unix_pair(type, minFd, ptr(out)), "restore sockets");
  return [out[0]!, out[1]!];
}

/** Send `messages` from socket `fd`: they queue at its peer, in order. */
export function fillSocket(fd: number, messages: Uint8Array[]): void {
  if (messages.length === 0) return;
  const total = messages.reduce((a, m) => a + m.length, 0);
  const data = new Uint8Array(Math.max(1, total));
  const lens = Uint32Array.from(messages.map((m) => m.length));
  let off = 0;
  for (const m of messages) {
    data.set(m, off);
    off += m.length;
  }
  checked(native().cr_unix_fill(fd, ptr(data), total, ptr(lens), lens.length), "restore sockets");
}

/** Put back a restored socket's send buffer (as SO_SNDBUF showed it; 0: leave it) and shutdown state. */
export function finishSocket(fd: number, sndbuf: number, shutdown: number): void {
  checked(native().cr_unix_finish(fd, sndbuf, shutdown), "restore sockets");
}

/**
 * A unix socket of `type` at a number >= minFd, bound to `name` when given
 * (a stale socket file at the path is removed; one somebody listens at is
 * "address in use") and listening with `backlog` when it is not null.
 */
export function makeUnixSocket(type: number, name: Uint8Array | null, backlog: number | null, minFd: number): number {
  const n = name ?? new Uint8Array(1);
  return checked(native().cr_unix_socket(type, ptr(n), name?.length ?? 0, backlog === null ? 0 : 1, backlog ?? 0, minFd), "restore sockets");
}

export interface InetDiag {
  ino: number;
  /** AF_INET 2, AF_INET6 10. */
  family: number;
  /** The kernel's TCP state: TCP_ESTABLISHED 1 ... TCP_CLOSE 7, TCP_LISTEN 10 ... */
  state: number;
  /** Listening: connections waiting to be accepted, and the backlog; else bytes to read and bytes not acknowledged. */
  rqueue: number;
  wqueue: number;
  /** Local and remote port; local and remote address (4 bytes for IPv4, 16 for IPv6, network order). */
  sport: number;
  dport: number;
  src: Uint8Array;
  dst: Uint8Array;
  /** The interface it is bound to (SO_BINDTODEVICE, an IPv6 scope), 0: none. */
  ifindex: number;
}

/** sock_diag's view of TCP socket `ino` of `family`; null when no TCP socket of that family has that inode. */
export function inetDiag(family: number, ino: number, pid: number): InetDiag | null {
  const buf = new Uint8Array(abi.InetDiag.size);
  const rc = native().cr_inet_diag(family, ino, ptr(buf));
  if (rc === -2) return null; // ENOENT
  checked(rc, "sock_diag", pid);
  const dv = new DataView(buf.buffer);
  const u32 = (o: number) => dv.getUint32(o, true);
  const alen = u32(abi.InetDiag.family) === 2 ? 4 : 16;
  return {
    ino: u32(abi.InetDiag.ino), family: u32(abi.InetDiag.family), state: u32(abi.InetDiag.state),
    rqueue: u32(abi.InetDiag.rqueue), wqueue: u32(abi.InetDiag.wqueue), sport: u32(abi.InetDiag.sport), dport: u32(abi.InetDiag.dport),
    src: buf.slice(abi.InetDiag.src, abi.InetDiag.src + alen), dst: buf.slice(abi.InetDiag.dst, abi.InetDiag.dst + alen),
    ifindex: u32(abi.InetDiag.ifindex),
  };
}

/** The options of TCP socket `fd` (a copy of a frozen task's) of `family`, as abi.INET_OPT bits. */
export function inetOpts(fd: number, family: number, pid: number): number {
  return checked(native().cr_inet_opts(fd, family), "getsockopt", pid);
}

/**
 * A TCP socket of `family` with the abi.INET_OPT bits `opts`, bound to
 * `address` (4 or 16 bytes) and `port`, listening with `backlog`, at a number
 * >= minFd, non-blocking. The port taken: a CrError with errno EADDRINUSE.
 */
export function makeTcpListener(family: number, address: Uint8Array, port: number, backlog: number, opts: number, minFd: number): number {
  return checked(native().cr_inet_listen(family, ptr(address), address.length, port, backlog, opts, minFd), "restore sockets");
}

// The restore plan: one flat buffer in the layout of zig/abi (PlanHeader +
// arrays + strings), built from the images and from where cr's own special
// mappings are. Pure: everything it needs comes in as arguments.
import { CrError } from "../errors.ts";
import * as abi from "../native/abi.ts";
import type { MapsEntry } from "../proc/maps.ts";
import { CAP_SYS_ADMIN, hasCap } from "../proc/status.ts";
import type { TaskImage, PagemapImage } from "../images/index.ts";
import { DYNAMIC_FEATURES, frameXstate, xstateProblem, type XstateLayout } from "../xstate.ts";

export const PAGE = 4096;
const TASK_SIZE = 0x7ffffffff000;
const O_RDONLY = 0, O_DIRECTORY = 0o200000, O_PATH = 0o10000000;
const ERESTARTSYS = 512, ERESTARTNOINTR = 513, ERESTARTNOHAND = 514, ERESTART_RESTARTBLOCK = 516, EINTR = 4;
const SYS_POLL = 7;
const SPECIAL_KINDS = ["vvar", "vvar_vclock", "vdso"] as const;

export interface PlanInput {
  pid: number;
  /** setsid() when equal to pid, else the session is inherited. */
  sid: number;
  /** setpgid(0, pgid) when non-zero (the task's own pid: a new group), 0: inherited. */
  pgid: number;
  task: TaskImage;
  pagemap: PagemapImage;
  /** Index in the shared fd table of each open file description (files.cbor id). */
  sharedIndex: ReadonlyMap<number, number>;
  /** Index in the shared fd table of each shared memory object's memfd. */
  shmemIndex: ReadonlyMap<number, number>;
  /** Index in the shared fd table of each ghost file's read-only and read-write fds (mappings, exe). */
  ghostIndex?: ReadonlyMap<number, { read?: number | undefined; write?: number | undefined }>;
  /** The tree's root: its parent is whoever restores it, so its parent-death signal is not armed. */
  root?: boolean;
  /** The status pipe's fd number; the task's own fds are all below it. */
  serviceFdBase: number;
  pagesPath: string;
  /** cr's own mappings now (the new task starts as a copy of them). */
  selfMaps: MapsEntry[];
  /** The XSAVE layouts of the dumping CPU (the images') and of this one. */
  cpu: { image: XstateLayout; here: XstateLayout };
}

export interface Hole {
  start: number;
  len: number;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * Registers as the task must resume: an interrupted syscall is re-issued (or
 * fails with EINTR, as CRIU does for restart blocks: nanosleep has written the
 * time left already). poll() is the exception: every interrupted poll is a
 * restart block, even one without a timeout, and programs such as `tail -f`
 * treat its EINTR as fatal; it is re-issued with its arguments, which are still
 * in the registers (a timeout starts over: late, never early).
 */
export function fixupSyscallRestart(regs: Uint8Array): Uint8Array {
  const out = regs.slice();
  const dv = new DataView(out.buffer);
  const off = (r: abi.RegName) => abi.USER_REGS_FIELDS.indexOf(r) * 8;
  const orig = dv.getBigInt64(off("orig_rax"), true);
  if (orig < 0n) return out;
  const rax = Number(dv.getBigInt64(off("rax"), true));
  if (rax === -ERESTARTSYS || rax === -ERESTARTNOINTR || rax === -ERESTARTNOHAND || (rax === -ERESTART_RESTARTBLOCK && orig === BigInt(SYS_POLL))) {
    dv.setBigInt64(off("rax"), orig, true);
    dv.setBigUint64(off("rip"), dv.getBigUint64(off("rip"), true) - 2n, true);
  } else if (rax === -ERESTART_RESTARTBLOCK) {
    dv.setBigInt64(off("rax"), BigInt(-EINTR), true);
  }
  return out;
}

/** Highest page-aligned gap of `len` bytes that none of `busy` touches. */
export function findHole(busy: { start: number; end: number }[], len: number): number {
  const sorted = [...busy].filter((b) => b.start < TASK_SIZE).sort((a, b) => b.start - a.start);
  let ceiling = TASK_SIZE - PAGE;
  for (const b of sorted) {
    if (b.end <= ceiling && ceiling - b.end >= len) return ceiling - len;
    ceiling = Math.min(ceiling, b.start);
  }
  if (ceiling - 0x10000 >= len) return ceiling - len;
  throw new CrError("restore", `no free ${len}-byte hole for the restorer`);
}

/**
 * How the restorer rebuilds the threads' seccomp chains (`threads` in plan
 * order): the longest prefix every thread has (`common`, installed once for
 * all with TSYNC, so shared as it was) and each thread's own rest (`own`).
 * Filters past the common prefix are each thread's own copy, even where two
 * threads shared them: the kernel can sync only to all threads.
 */
export function seccompLayout(task: TaskImage, threads: TaskImage["threads"]): {
  filters: NonNullable<TaskImage["seccompFilters"]>; common: number[]; own: number[][];
} {
  const filters = task.seccompFilters ?? [];
  const chains = threads.map((t) => t.seccomp ?? []);
  const first = chains[0] ?? [];
  let n = 0;
  while (n < first.length && chains.every((c) => c[n] === first[n])) n++;
  return { filters, common: first.slice(0, n), own: chains.map((c) => c.slice(n)) };
}

/** The plan of one live task, without its hole (see setPlanHole). */
export function buildPlan(inp: PlanInput): Uint8Array {
  const { task } = inp;
  // The main thread first: the restorer runs in it and starts the others.
  const main = task.threads.find((t) => t.tid === inp.pid);
  if (!main) throw new CrError("restore", "task image has no main thread", { pid: inp.pid });
  const threads = [main, ...task.threads.filter((t) => t !== main)];
  const enc = new TextEncoder();
  const perm = task.xcompPerm ?? 0n;
  const frames = threads.map((t) => {
    const problem = xstateProblem(t.xstate, inp.cpu.image, inp.cpu.here, perm);
    if (problem) throw new CrError("restore", `thread ${t.tid}: its CPU state ${problem}`, { pid: inp.pid });
    return frameXstate(t.xstate, inp.cpu.image, inp.cpu.here).bytes;
  });

  // --- files: service files the task opens itself, then its fds ----------
  interface F { path: string; flags: number; target: number; shared: number; cloexec: boolean }
  const fl: F[] = [];
  const service = (path: string, flags: number) => {
    fl.push({ path, flags, target: -1, shared: -1, cloexec: true });
    return fl.length - 1;
  };
  /** A file of the shared fd table the task uses for itself (a mapping, the exe), not as one of its fds. */
  const sharedService = (shared: number) => {
    fl.push({ path: "", flags: 0, target: -1, shared, cloexec: true });
    return fl.length - 1;
  };
  /** A deleted file's fd: the task cannot open it by path, cr recreated and opened it (see restore/ghost.ts). */
  const ghostService = (id: number, write: boolean) => {
    const fds = inp.ghostIndex?.get(id);
    const shared = write ? fds?.write : fds?.read;
    if (shared === undefined) throw new CrError("restore", `ghost file ${id} has no ${write ? "read-write" : "read-only"} fd`, { pid: inp.pid });
    return sharedService(shared);
  };
  const pagesFile = service(inp.pagesPath, O_RDONLY);
  const exeFile = task.exeGhostId === undefined ? service(task.exe, O_RDONLY) : ghostService(task.exeGhostId, false);
  const cwdFile = service(task.cwd, O_PATH | O_DIRECTORY);
  // One service file per file and access mode: a writable shared mapping needs the file open read-write.
  const mapKey = (v: (typeof task.mm.vmas)[number]) => {
    const writableShared = (v.flags & 1) !== 0 && (v.prot & 2) !== 0;
    return { key: `${writableShared ? "rw" : "ro"} ${v.ghostId === undefined ? v.path : `ghost ${v.ghostId}`}`, writableShared };
  };
  const mapFile = new Map<string, number>();
  for (const v of task.mm.vmas) {
    if (v.kind !== "file" || !v.path) continue;
    const { key, writableShared } = mapKey(v);
    if (mapFile.has(key)) continue;
    mapFile.set(key, v.ghostId === undefined ? service(v.path, writableShared ? 2 : O_RDONLY) : ghostService(v.ghostId, writableShared));
  }
  const shmemFile = new Map<number, number>();
  for (const v of task.mm.vmas) {
    if (v.kind !== "shmem" || v.shmemId === undefined || shmemFile.has(v.shmemId)) continue;
    const shared = inp.shmemIndex.get(v.shmemId);
    if (shared === undefined) throw new CrError("restore", `shared memory object ${v.shmemId} has no memfd`, { pid: inp.pid });
    shmemFile.set(v.shmemId, sharedService(shared));
  }
  for (const fd of task.fds) {
    const shared = inp.sharedIndex.get(fd.fileId);
    if (shared === undefined) throw new CrError("restore", `fd ${fd.fd} refers to file ${fd.fileId}, missing from files.cbor`, { pid: inp.pid });
    if (fd.fd >= inp.serviceFdBase) throw new CrError("restore", `fd ${fd.fd} is above the service fd base ${inp.serviceFdBase}`, { pid: inp.pid });
    fl.push({ path: "", flags: 0, target: fd.fd, shared, cloexec: fd.cloexec });
  }

  // --- VMAs and page runs --------------------------------------------------
  const vmas = task.mm.vmas.filter((v) => v.kind !== "vsyscall" && !SPECIAL_KINDS.includes(v.kind as (typeof SPECIAL_KINDS)[number]));
  const runs = [...inp.pagemap.entries].sort((a, b) => a.start - b.start);
  const vmaPages: { first: number; count: number }[] = [];
  let ri = 0;
  for (const v of vmas) {
    const first = ri;
    while (ri < runs.length && runs[ri]!.start < v.end) {
      const r = runs[ri]!;
      if (r.start < v.start || r.start + r.pages * PAGE > v.end) {
        throw new CrError("restore", `page run at 0x${r.start.toString(16)} is outside every VMA`, { pid: inp.pid });
      }
      ri++;
    }
    vmaPages.push({ first, count: ri - first });
  }
  if (ri !== runs.length) throw new CrError("restore", `page run at 0x${runs[ri]!.start.toString(16)} is outside every VMA`, { pid: inp.pid });

  // --- special mappings: ours now -> theirs then --------------------------
  const specials: { cur: number; target: number; len: number }[] = [];
  for (const kind of SPECIAL_KINDS) {
    const theirs = task.mm.vmas.find((v) => v.kind === kind);
    const ours = inp.selfMaps.find((m) => m.path === `[${kind}]`);
    if (!theirs && !ours) continue;
    if (!theirs || !ours || theirs.end - theirs.start !== ours.end - ours.start) {
      throw new CrError("restore", `the [${kind}] mapping differs from the dump's (different kernel?): not supported yet`, { pid: inp.pid });
    }
    specials.push({ cur: ours.start, target: theirs.start, len: ours.end - ours.start });
  }

  // --- layout ----------------------------------------------------------------
  const strings: Uint8Array[] = [];
  let off: number = abi.PlanHeader.size;
  const vmasOff = off; off += vmas.length * abi.PlanVma.size;
  const pagesOff = off; off += runs.length * abi.PlanPages.size;
  const filesOff = off; off += fl.length * abi.PlanFile.size;
  const pathOffs: number[] = [];
  for (const f of fl) {
    const b = enc.encode(f.path + "\0");
    pathOffs.push(off);
    strings.push(b);
    off += b.length;
  }
  off = alignUp(off, 16);
  const auxvOff = off; off += task.mm.auxv.length;
  off = alignUp(off, 8);
  const threadsOff = off; off += threads.length * abi.PlanThread.size;
  const threadData = threads.map((t, i) => {
    off = alignUp(off, 64);
    const xstateOff = off; off += frames[i]!.length;
    const pendingOff = off; off += t.pending.length * abi.SIGINFO_SIZE;
    return { xstateOff, pendingOff };
  });
  const pendingOff = off; off += task.sharedPending.length * abi.SIGINFO_SIZE;
  const timers = task.posixTimers ?? [];
  off = alignUp(off, 8);
  const timersOff = off; off += timers.length * abi.PlanPosixTimer.size;
  const groupsOff = off; off += task.creds.groups.length * 4;
  const sc = seccompLayout(task, threads);
  off = alignUp(off, 8);
  const seccompOff = off; off += sc.filters.length * abi.PlanSeccompFilter.size;
  const insnsOffs = sc.filters.map((f) => { const at = off; off += f.insns.length; return at; });
  const commonOff = off; off += sc.common.length * 4;
  const ownOffs = sc.own.map((c) => { const at = off; off += c.length * 4; return at; });
  const total = alignUp(off, 8);

  const bytes = new Uint8Array(total);
  const dv = new DataView(bytes.buffer);
  const u32 = (o: number, v: number) => dv.setUint32(o, v, true);
  const i32 = (o: number, v: number) => dv.setInt32(o, v, true);
  const u64 = (o: number, v: number | bigint) => dv.setBigUint64(o, BigInt(v), true);
  const H = abi.PlanHeader;

  u64(H.magic, abi.PLAN_MAGIC);
  u64(H.total_len, total);
  u32(H.abi_version, abi.ABI_VERSION);
  i32(H.pid, inp.pid);
  u32(H.vmas_off, vmasOff); u32(H.vmas_count, vmas.length);
  u32(H.pages_off, pagesOff); u32(H.pages_count, runs.length);
  u32(H.files_off, filesOff); u32(H.files_count, fl.length);
  i32(H.pages_file, pagesFile); i32(H.exe_file, exeFile); i32(H.cwd_file, cwdFile);
  i32(H.status_fd, -1);
  i32(H.service_fd_base, inp.serviceFdBase);
  u32(H.special_count, specials.length);
  specials.forEach((s, i) => {
    const o = H.special + i * abi.PlanSpecial.size;
    u64(o + abi.PlanSpecial.cur_start, s.cur); u64(o + abi.PlanSpecial.target_start, s.target); u64(o + abi.PlanSpecial.len, s.len);
  });
  const mm = task.mm;
  const mmVals: Record<(typeof abi.PRCTL_MM_FIELDS)[number], number> = {
    start_code: mm.startCode, end_code: mm.endCode, start_data: mm.startData, end_data: mm.endData,
    start_brk: mm.startBrk, brk: mm.brk, start_stack: mm.startStack, arg_start: mm.argStart, arg_end: mm.argEnd,
    env_start: mm.envStart, env_end: mm.envEnd, auxv: 0,
  };
  abi.PRCTL_MM_FIELDS.forEach((f, i) => u64(H.mm + i * 8, mmVals[f]));
  u32(H.auxv_off, auxvOff); u32(H.auxv_len, mm.auxv.length);
  bytes.set(mm.auxv, auxvOff);

  for (const sa of task.sigactions) {
    const o = H.sigactions + (sa.sig - 1) * abi.KSIGACTION_SIZE;
    u64(o, sa.handler); u64(o + 8, sa.flags); u64(o + 16, sa.restorer); u64(o + 24, sa.mask);
  }
  [task.itimers.real, task.itimers.virtual, task.itimers.prof].forEach((t, i) => {
    const o = H.itimers + i * abi.ITIMERVAL_SIZE;
    // A periodic timer reads 0 while its signal is pending (the kernel re-arms
    // it on dequeue); set as 0 it would be disarmed: let it fire at once instead.
    const valueUs = t.valueUs === 0 && t.intervalUs > 0 ? 1 : t.valueUs;
    u64(o, Math.floor(t.intervalUs / 1e6)); u64(o + 8, t.intervalUs % 1e6);
    u64(o + 16, Math.floor(valueUs / 1e6)); u64(o + 24, valueUs % 1e6);
  });
  u64(H.personality, task.personality);
  u64(H.xcomp_perm, perm & DYNAMIC_FEATURES & inp.cpu.here.xcr0);
  u32(H.threads_off, threadsOff); u32(H.threads_count, threads.length);
  threads.forEach((t, i) => {
    const o = threadsOff + i * abi.PlanThread.size;
    const T = abi.PlanThread;
    const { xstateOff, pendingOff: tPending } = threadData[i]!;
    i32(o + T.tid, t.tid);
    bytes.set(fixupSyscallRestart(t.regs), o + T.regs);
    u32(o + T.xstate_off, xstateOff); u32(o + T.xstate_len, frames[i]!.length);
    bytes.set(frames[i]!, xstateOff);
    u32(o + T.sigpending_off, tPending); u32(o + T.sigpending_count, t.pending.length);
    t.pending.forEach((p, j) => bytes.set(p, tPending + j * abi.SIGINFO_SIZE));
    if (t.rseq) {
      u64(o + T.rseq_ptr, t.rseq.ptr); u32(o + T.rseq_len, t.rseq.len); u32(o + T.rseq_sig, t.rseq.sig);
    }
    u64(o + T.sigmask, t.sigmask);
    u64(o + T.altstack, t.altstack.sp); i32(o + T.altstack + 8, t.altstack.flags); u64(o + T.altstack + 16, t.altstack.size);
    u64(o + T.tid_address, t.tidAddress);
    u64(o + T.robust_head, t.robustList.head); u64(o + T.robust_len, t.robustList.len);
    // As CRIU: the root's parent at restore is cr (or cr's), not the one it had.
    u32(o + T.pdeath_sig, inp.root ? 0 : t.pdeathSig ?? 0);
    // A thread with no recorded name takes the task's.
    bytes.set(enc.encode(t.comm ?? task.comm).subarray(0, 15), o + T.comm);
  });
  u32(H.posix_timers_off, timersOff); u32(H.posix_timers_count, timers.length);
  timers.forEach((t, i) => {
    const o = timersOff + i * abi.PlanPosixTimer.size;
    const T = abi.PlanPosixTimer;
    i32(o + T.id, t.id); i32(o + T.clock, t.clockId); i32(o + T.signo, t.signo); i32(o + T.notify, t.notify);
    i32(o + T.tid, t.tid); u64(o + T.sival, t.sival);
    // As for itimers: a periodic timer whose signal is pending reads 0; fire it at once instead of disarming it.
    const value = t.valueNs === 0n && t.intervalNs > 0n ? 1n : t.valueNs;
    const ts = (at: number, ns: bigint) => { u64(at, ns / 1_000_000_000n); u64(at + 8, ns % 1_000_000_000n); };
    ts(o + T.spec, t.intervalNs); ts(o + T.spec + 16, value);
  });
  const C = abi.PlanCreds, cr = task.creds;
  cr.uid.forEach((v, i) => u32(H.creds + C.uid + 4 * i, v));
  cr.gid.forEach((v, i) => u32(H.creds + C.gid + 4 * i, v));
  u32(H.creds + C.groups_off, groupsOff); u32(H.creds + C.groups_count, cr.groups.length);
  cr.groups.forEach((g, i) => u32(groupsOff + 4 * i, g));
  u64(H.creds + C.cap_inh, cr.capInh); u64(H.creds + C.cap_prm, cr.capPrm); u64(H.creds + C.cap_eff, cr.capEff);
  u64(H.creds + C.cap_bnd, cr.capBnd); u64(H.creds + C.cap_amb, cr.capAmb);
  u32(H.creds + C.no_new_privs, cr.noNewPrivs ? 1 : 0);
  // Images without it: what a task of these ids would have had by default.
  u32(H.creds + C.dumpable, cr.dumpable ?? 1);
  let rlimitsSet = 0;
  for (const l of task.rlimits) {
    if (l.resource >= abi.RLIM_NLIMITS) continue;
    u64(H.rlimits + 16 * l.resource, l.cur); u64(H.rlimits + 16 * l.resource + 8, l.max);
    rlimitsSet |= 1 << l.resource;
  }
  u32(H.rlimits_set, rlimitsSet);
  i32(H.sid, inp.sid); i32(H.pgid, inp.pgid);
  u32(H.sigpending_off, pendingOff); u32(H.sigpending_count, task.sharedPending.length);
  u32(H.umask, task.umask);
  u32(H.seccomp_off, seccompOff); u32(H.seccomp_count, sc.filters.length);
  sc.filters.forEach((f, i) => {
    const o = seccompOff + i * abi.PlanSeccompFilter.size;
    u32(o + abi.PlanSeccompFilter.insns_off, insnsOffs[i]!); u32(o + abi.PlanSeccompFilter.insns_count, f.insns.length / 8);
    u32(o + abi.PlanSeccompFilter.flags, f.flags);
    bytes.set(f.insns, insnsOffs[i]!);
  });
  u32(H.seccomp_common_off, commonOff); u32(H.seccomp_common_count, sc.common.length);
  sc.common.forEach((x, i) => u32(commonOff + 4 * i, x));
  sc.own.forEach((chain, k) => {
    const o = threadsOff + k * abi.PlanThread.size;
    u32(o + abi.PlanThread.seccomp_off, ownOffs[k]!); u32(o + abi.PlanThread.seccomp_count, chain.length);
    chain.forEach((x, i) => u32(ownOffs[k]! + 4 * i, x));
  });
  u32(H.seccomp_admin, sc.filters.length > 0 && !cr.noNewPrivs && !hasCap(cr.capEff, CAP_SYS_ADMIN) ? 1 : 0);
  task.sharedPending.forEach((p, i) => bytes.set(p, pendingOff + i * abi.SIGINFO_SIZE));

  vmas.forEach((v, i) => {
    const o = vmasOff + i * abi.PlanVma.size;
    // Shared memory maps its memfd like a file.
    const fileIndex = v.kind === "file" && v.path ? mapFile.get(mapKey(v).key)! : v.kind === "shmem" ? shmemFile.get(v.shmemId!)! : -1;
    u64(o + abi.PlanVma.start, v.start); u64(o + abi.PlanVma.end, v.end); u64(o + abi.PlanVma.pgoff, fileIndex >= 0 ? v.offset : 0);
    u32(o + abi.PlanVma.prot, v.prot); u32(o + abi.PlanVma.flags, v.flags);
    u32(o + abi.PlanVma.kind, fileIndex >= 0 ? 1 : 0);
    i32(o + abi.PlanVma.file_index, fileIndex);
    u32(o + abi.PlanVma.page_first, vmaPages[i]!.first); u32(o + abi.PlanVma.page_count, vmaPages[i]!.count);
    u32(o + abi.PlanVma.pkey, v.pkey ?? 0);
  });
  runs.forEach((r, i) => {
    const o = pagesOff + i * abi.PlanPages.size;
    u64(o + abi.PlanPages.addr, r.start); u64(o + abi.PlanPages.len, r.pages * PAGE); u64(o + abi.PlanPages.file_off, r.offset);
  });
  fl.forEach((f, i) => {
    const o = filesOff + i * abi.PlanFile.size;
    u32(o + abi.PlanFile.path_off, pathOffs[i]!); u32(o + abi.PlanFile.path_len, strings[i]!.length - 1);
    u32(o + abi.PlanFile.flags, f.flags);
    i32(o + abi.PlanFile.fd, -1); i32(o + abi.PlanFile.target_fd, f.target); i32(o + abi.PlanFile.shared, f.shared);
    u32(o + abi.PlanFile.cloexec, f.cloexec ? 1 : 0);
    bytes.set(strings[i]!, pathOffs[i]!);
  });
  return bytes;
}

/** The hole every task maps the restorer, its plan and its stack into. */
export function setPlanHole(plan: Uint8Array, hole: Hole): void {
  const dv = new DataView(plan.buffer, plan.byteOffset, plan.byteLength);
  dv.setBigUint64(abi.PlanHeader.hole_start, BigInt(hole.start), true);
  dv.setBigUint64(abi.PlanHeader.hole_len, BigInt(hole.len), true);
}

/**
 * A hole for plans up to `maxPlanLen` bytes of tasks of up to `maxThreads`
 * threads, free in every task's layout (`busy`) and in cr's own. Layout:
 * [restorer | plan | one area per thread | main stack] (zig/abi).
 */
export function restorerHole(busy: { start: number; end: number }[], restorerLen: number, maxPlanLen: number, maxThreads: number): Hole {
  const len = alignUp(restorerLen, PAGE) + alignUp(maxPlanLen, PAGE) + maxThreads * abi.RESTORER_THREAD_AREA + abi.RESTORER_STACK;
  return { start: findHole(busy, len), len };
}

/** The plan of a zombie: only its identity and session matter; it exits before any of the rest is used. */
export function zombiePlan(pid: number, sid: number, pgid: number, serviceFdBase: number): Uint8Array {
  const H = abi.PlanHeader;
  const bytes = new Uint8Array(H.size);
  const dv = new DataView(bytes.buffer);
  dv.setBigUint64(H.magic, abi.PLAN_MAGIC, true);
  dv.setBigUint64(H.total_len, BigInt(H.size), true);
  dv.setUint32(H.abi_version, abi.ABI_VERSION, true);
  dv.setInt32(H.pid, pid, true);
  dv.setUint32(H.files_off, H.size, true);
  dv.setInt32(H.pages_file, -1, true);
  dv.setInt32(H.exe_file, -1, true);
  dv.setInt32(H.cwd_file, -1, true);
  dv.setInt32(H.service_fd_base, serviceFdBase, true);
  dv.setInt32(H.sid, sid, true);
  dv.setInt32(H.pgid, pgid, true);
  return bytes;
}

// Semantic checks of one record, beyond its types: sizes of raw kernel
// structs, ranges, order and uniqueness. decodeImage applies them, so every
// reader (restore included) sees only records that make sense on their own.
// Checks across files (pagemap vs pages file, fds vs files.cbor) are in
// imageset.ts. Each returns a problem or null.
import { NSIG, SIGINFO_SIZE, TERMIOS_SIZE, USER_REGS_SIZE, XSTATE_MAX } from "../native/abi.ts";
import { HASH_ALG } from "./schema.ts";
import type { ImageBody, ImageKind, TaskImage, TreeImage, FilesImage, ManifestImage, InventoryImage, PagemapImage } from "./schema.ts";

/** Legacy FXSAVE area + XSAVE header: the smallest XSAVE image. */
const XSTATE_MIN = 576;
/** Highest user address + 1 on x86_64 with 4-level paging (TASK_SIZE). */
export const USER_END = 0x7ffffffff000;
const MAX_FD = 1 << 20; // fs.nr_open's ceiling
const PAGE = 4096;

type Check<T> = (body: T) => string | null;

function firstDuplicate(values: number[]): number | undefined {
  const seen = new Set<number>();
  for (const v of values) {
    if (seen.has(v)) return v;
    seen.add(v);
  }
  return undefined;
}

const inventory: Check<InventoryImage> = (b) => {
  if (b.pageSize < PAGE || b.pageSize > 1 << 30 || (b.pageSize & (b.pageSize - 1)) !== 0) return `pageSize ${b.pageSize} is not a page size`;
  if (b.rootPid === 0) return "rootPid is 0";
  return b.cpu ? checkCpu(b.cpu) : null;
};

/** The dumping CPU's XSAVE layout: features of its XCR0, each inside the area, once. */
function checkCpu(c: NonNullable<InventoryImage["cpu"]>): string | null {
  if (c.xstateSize < XSTATE_MIN || c.xstateSize > XSTATE_MAX) return `cpu.xstateSize ${c.xstateSize} is not an XSAVE area size`;
  const dup = firstDuplicate(c.features.map((f) => f.bit));
  if (dup !== undefined) return `cpu.features: feature ${dup} appears twice`;
  for (const [i, f] of c.features.entries()) {
    const at = `cpu.features[${i}]`;
    if (f.bit < 2 || f.bit >= 32 || ((c.xcr0 >> BigInt(f.bit)) & 1n) === 0n) return `${at}: feature ${f.bit} is not one of XCR0's`;
    if (f.offset < XSTATE_MIN || f.size === 0 || f.offset + f.size > c.xstateSize) return `${at}: ${f.size} bytes at ${f.offset} lie outside the area`;
  }
  return null;
}

const tree: Check<TreeImage> = (b) => {
  if (b.tasks.length === 0) return "tasks: empty tree";
  const dup = firstDuplicate(b.tasks.map((t) => t.pid));
  if (dup !== undefined) return `tasks: pid ${dup} appears twice`;
  for (const [i, t] of b.tasks.entries()) {
    if (t.pid === 0) return `tasks[${i}]: pid 0`;
    if (!t.threads.includes(t.pid)) return `tasks[${i}]: threads do not include the pid ${t.pid}`;
    const d = firstDuplicate(t.threads);
    if (d !== undefined) return `tasks[${i}]: thread ${d} appears twice`;
  }
  return checkExternal(b);
};

/** --shell-job's ids outside the tree: really outside, and the root's. */
function checkExternal(b: TreeImage): string | null {
  const ext = b.external;
  if (!ext) return null;
  const root = b.tasks[0]!;
  const pids = new Set(b.tasks.map((t) => t.pid));
  if (ext.sid === 0 || pids.has(ext.sid)) return `external.sid ${ext.sid} is not a session outside the tree`;
  if (root.sid !== ext.sid) return `external.sid ${ext.sid} is not the root's session ${root.sid}`;
  if (ext.pgid !== undefined) {
    if (ext.pgid === 0 || pids.has(ext.pgid)) return `external.pgid ${ext.pgid} is not a process group outside the tree`;
    if (root.pgid !== ext.pgid) return `external.pgid ${ext.pgid} is not the root's process group ${root.pgid}`;
  } else if (!pids.has(root.pgid)) {
    return `the root's process group ${root.pgid} is led outside the tree, but external.pgid does not say so`;
  }
  if (ext.termios && ext.termios.length !== TERMIOS_SIZE) return `external.termios: ${ext.termios.length} bytes, expected ${TERMIOS_SIZE}`;
  const fg = ext.foreground;
  if (fg !== undefined && fg !== ext.pgid) {
    const leader = b.tasks.find((t) => t.pid === fg);
    if (!leader || leader.pgid !== fg || leader.sid !== ext.sid || leader.state === "zombie") {
      return `external.foreground ${fg} is neither external.pgid nor a group led by a live task of the root's session`;
    }
  }
  return null;
}

function checkVmas(vmas: TaskImage["mm"]["vmas"]): string | null {
  let prevEnd = 0;
  for (const [i, v] of vmas.entries()) {
    const at = `mm.vmas[${i}]`;
    if (v.start % PAGE !== 0 || v.end % PAGE !== 0 || v.offset % PAGE !== 0) return `${at}: not page aligned`;
    if (v.start >= v.end) return `${at}: empty or inverted (0x${v.start.toString(16)}-0x${v.end.toString(16)})`;
    if (v.end > USER_END) return `${at}: ends above the user address space`;
    if (v.start < prevEnd) return `${at}: overlaps or out of order`;
    if (v.prot > 7) return `${at}: prot ${v.prot} is not a combination of read/write/exec`;
    if (v.kind === "file" && !v.path) return `${at}: file mapping without a path`;
    if (v.ghostId !== undefined && v.kind !== "file") return `${at}: a ${v.kind} mapping cannot map a ghost file`;
    if (v.pkey !== undefined && (v.pkey < 1 || v.pkey > 15)) return `${at}: protection key ${v.pkey} is not 1 .. 15`;
    prevEnd = v.end;
  }
  return null;
}

function checkThreads(b: TaskImage): string | null {
  if (b.threads.length === 0) return "threads: none";
  if (!b.threads.some((t) => t.tid === b.pid)) return `threads: none has the task's pid ${b.pid}`;
  const dup = firstDuplicate(b.threads.map((t) => t.tid));
  if (dup !== undefined) return `threads: tid ${dup} appears twice`;
  for (const [i, t] of b.threads.entries()) {
    const at = `threads[${i}]`;
    if (t.regs.length !== USER_REGS_SIZE) return `${at}.regs: ${t.regs.length} bytes, expected ${USER_REGS_SIZE}`;
    if (t.xstate.length < XSTATE_MIN || t.xstate.length > XSTATE_MAX) {
      return `${at}.xstate: ${t.xstate.length} bytes is not an XSAVE area`;
    }
    const p = t.pending.findIndex((s) => s.length !== SIGINFO_SIZE);
    if (p >= 0) return `${at}.pending[${p}]: not a ${SIGINFO_SIZE}-byte siginfo`;
  }
  return null;
}

function checkPosixTimers(b: TaskImage): string | null {
  const timers = b.posixTimers ?? [];
  const dup = firstDuplicate(timers.map((t) => t.id));
  if (dup !== undefined) return `posixTimers: id ${dup} appears twice`;
  for (const [i, t] of timers.entries()) {
    const at = `posixTimers[${i}]`;
    if (t.id > 0x7fffffff) return `${at}: id ${t.id} out of range`;
    if (t.signo > NSIG) return `${at}: signal ${t.signo} out of range`;
    // SIGEV_SIGNAL, SIGEV_NONE or SIGEV_THREAD, possibly | SIGEV_THREAD_ID (to one of the task's threads).
    if ((t.notify & ~4) > 2) return `${at}: sigev_notify ${t.notify} unknown`;
    if ((t.notify & 4) !== 0 && !b.threads.some((th) => th.tid === t.tid)) return `${at}: notifies thread ${t.tid}, not one of the task's`;
    if (t.intervalNs < 0n || t.valueNs < 0n) return `${at}: negative time`;
  }
  return null;
}

/** Most classic BPF instructions of one seccomp filter (BPF_MAXINSNS). */
export const SECCOMP_MAX_INSNS = 4096;
/** The seccomp filter flags a dump records (SECCOMP_FILTER_FLAG_LOG). */
const SECCOMP_FLAGS_KNOWN = 2;

/**
 * Every filter a real program (8-byte instructions, 1..4096 of them) used by
 * some thread; every chain names existing filters, each at most once, and
 * a filter follows the same parent in every chain (the kernel's filters form
 * a tree: a filter has one parent).
 */
export function checkSeccomp(b: TaskImage): string | null {
  const filters = b.seccompFilters ?? [];
  for (const [i, f] of filters.entries()) {
    const at = `seccompFilters[${i}]`;
    if (f.insns.length % 8 !== 0) return `${at}: ${f.insns.length} bytes is not a list of 8-byte instructions`;
    const n = f.insns.length / 8;
    if (n < 1 || n > SECCOMP_MAX_INSNS) return `${at}: ${n} instructions, expected 1..${SECCOMP_MAX_INSNS}`;
    if ((f.flags & ~SECCOMP_FLAGS_KNOWN) !== 0) return `${at}: unknown flags 0x${f.flags.toString(16)}`;
  }
  const parent = new Map<number, number>();
  const used = new Set<number>();
  for (const [i, t] of b.threads.entries()) {
    const chain = t.seccomp ?? [];
    const at = `threads[${i}].seccomp`;
    const bad = chain.find((x) => x >= filters.length);
    if (bad !== undefined) return `${at}: filter ${bad} does not exist (${filters.length} filters)`;
    const dup = firstDuplicate(chain);
    if (dup !== undefined) return `${at}: filter ${dup} appears twice`;
    for (const [j, x] of chain.entries()) {
      const p = j === 0 ? -1 : chain[j - 1]!;
      if ((parent.get(x) ?? p) !== p) return `${at}: filter ${x} follows ${p}, elsewhere ${parent.get(x)}`;
      parent.set(x, p);
      used.add(x);
    }
  }
  if (used.size !== filters.length) return `seccompFilters: ${filters.length - used.size} filter(s) used by no thread`;
  return null;
}

const task: Check<TaskImage> = (b) => {
  if (b.pid === 0) return "pid 0";
  if (b.umask > 0o777) return `umask ${b.umask.toString(8)} out of range`;
  for (const [i, s] of b.sigactions.entries()) {
    if (s.sig < 1 || s.sig > NSIG) return `sigactions[${i}]: signal ${s.sig} out of range 1..${NSIG}`;
  }
  const dupSig = firstDuplicate(b.sigactions.map((s) => s.sig));
  if (dupSig !== undefined) return `sigactions: signal ${dupSig} appears twice`;
  const dupRes = firstDuplicate(b.rlimits.map((r) => r.resource));
  if (dupRes !== undefined) return `rlimits: resource ${dupRes} appears twice`;
  const sp = b.sharedPending.findIndex((s) => s.length !== SIGINFO_SIZE);
  if (sp >= 0) return `sharedPending[${sp}]: not a ${SIGINFO_SIZE}-byte siginfo`;
  for (const [i, f] of b.fds.entries()) if (f.fd >= MAX_FD) return `fds[${i}]: fd ${f.fd} out of range`;
  const dupFd = firstDuplicate(b.fds.map((f) => f.fd));
  if (dupFd !== undefined) return `fds: fd ${dupFd} appears twice`;
  if (b.mm.auxv.length % 16 !== 0) return `mm.auxv: ${b.mm.auxv.length} bytes is not a list of (type, value) pairs`;
  return checkThreads(b) ?? checkPosixTimers(b) ?? checkSeccomp(b) ?? checkVmas(b.mm.vmas);
};

const pagemap: Check<PagemapImage> = (b) => {
  for (const [i, e] of b.entries.entries()) {
    if (e.pages === 0) return `entries[${i}]: empty run`;
    if (e.pages > USER_END / PAGE || e.start + e.pages * PAGE > USER_END) return `entries[${i}]: ends above the user address space`;
  }
  return null;
};

const U64_END = 1n << 64n;
/** Clocks timerfd_create accepts: REALTIME, MONOTONIC, BOOTTIME, REALTIME_ALARM, BOOTTIME_ALARM. */
const TIMERFD_CLOCKS = [0, 1, 7, 8, 9];
const inU64 = (v: bigint) => v >= 0n && v < U64_END;

type FileRecord = FilesImage["files"][number];

/** Watches in strictly increasing wd order (restore adds them in that order), each on an absolute path. */
function checkInotify(f: FileRecord): string | null {
  if (!f.inotify) return "inotify without its watches";
  let prev = 0;
  for (const [i, w] of f.inotify.watches.entries()) {
    if (w.wd <= prev || w.wd > 0x7fffffff) return `inotify.watches[${i}]: wd ${w.wd} out of range or out of order`;
    if (w.mask > 0xffffffff) return `inotify.watches[${i}]: mask ${w.mask} is wider than 32 bits`;
    if (!w.path.startsWith("/") || w.path.includes("\0")) return `inotify.watches[${i}]: path ${JSON.stringify(w.path)} is not absolute`;
    prev = w.wd;
  }
  return null;
}

/** The kind's own record is there and in range; references stay inside files.cbor. */
function checkFileKind(f: FileRecord, byId: ReadonlyMap<number, FileRecord>, fifos: ReadonlySet<number>): string | null {
  switch (f.kind) {
    case "fifo":
      if (f.fifoId === undefined || !fifos.has(f.fifoId)) return `fifo without a record in fifos (fifoId ${f.fifoId})`;
      return null;
    case "eventfd":
      if (!f.eventfd) return "eventfd without its counter";
      if (f.eventfd.count < 0n || f.eventfd.count >= U64_END - 1n) return `eventfd count ${f.eventfd.count} out of range`;
      return null;
    case "timerfd": {
      const t = f.timerfd;
      if (!t) return "timerfd without its timer";
      if (!TIMERFD_CLOCKS.includes(t.clockid)) return `timerfd clock ${t.clockid} is not one timerfd_create accepts`;
      if (t.settimeFlags > 3) return `timerfd settime flags ${t.settimeFlags} out of range`;
      if (!inU64(t.ticks) || t.valueNs < 0n || t.valueNs >= 1n << 63n || t.intervalNs < 0n || t.intervalNs >= 1n << 63n) {
        return "timerfd ticks or times out of range";
      }
      return null;
    }
    case "signalfd":
      if (!f.signalfd || !inU64(f.signalfd.sigmask)) return "signalfd without a 64-bit mask";
      return null;
    case "tty":
      if (!f.tty) return "tty without its record";
      return null;
    case "inotify":
      return checkInotify(f);
    case "unix":
      return checkUnix(f, byId);
    case "inet":
      return checkInet(f, byId);
    case "epoll": {
      if (!f.epoll) return "epoll without its registrations";
      for (const [i, r] of f.epoll.entries()) {
        if (!byId.has(r.fileId) || r.fileId === f.id) return `epoll[${i}]: registered file ${r.fileId} is not another file of files.cbor`;
        if (r.tfd >= MAX_FD || r.events > 0xffffffff || !inU64(r.data)) return `epoll[${i}]: fd, events or data out of range`;
      }
      const dup = f.epoll.find((r, i) => f.epoll!.findIndex((q) => q.tfd === r.tfd && q.fileId === r.fileId) !== i);
      if (dup) return `epoll: fd ${dup.tfd} on file ${dup.fileId} registered twice`;
      return null;
    }
    default:
      return null;
  }
}

const UNIX_PATH_MAX = 108;

/** A socket's own record, and a peer that is a unix socket of its type whose peer it is. */
function checkUnix(f: FileRecord, byId: ReadonlyMap<number, FileRecord>): string | null {
  const u = f.unix;
  if (!u) return "unix socket without its record";
  if (u.shutdown > 3) return `unix socket shutdown state ${u.shutdown} out of range`;
  if (u.sndbuf > 0x7fffffff) return `unix socket send buffer ${u.sndbuf} out of range`;
  if (u.state !== "connected" && (u.peer !== undefined || u.queue.length !== 0)) return `unix socket (${u.state}) with a peer or a queue`;
  if (u.state === "listening") {
    if (u.type === "dgram") return "a listening dgram socket";
    if (!u.name || u.backlog === undefined) return "a listening unix socket without its name or backlog";
  } else if (u.name !== undefined || u.backlog !== undefined) {
    return `unix socket (${u.state}) with a name or a backlog`;
  }
  if (u.name) {
    if (u.name.length === 0 || u.name.length > UNIX_PATH_MAX) return `unix socket name of ${u.name.length} bytes`;
    if (u.name[0] !== 0 && (u.name[0] !== 0x2f || u.name.includes(0))) return "unix socket name is neither abstract nor an absolute path";
  }
  if (u.peer === undefined) return null;
  const p = byId.get(u.peer)?.unix;
  if (!p || u.peer === f.id) return `unix socket peer ${u.peer} is not another unix socket of files.cbor`;
  if (p.type !== u.type || p.state !== "connected" || p.peer !== f.id) return `unix socket peer ${u.peer} is not a ${u.type} socket connected back to it`;
  return null;
}

/** An IPv4/IPv6 listener's own record in range, and no other listener of files.cbor on the same address and port (only SO_REUSEPORT shares one). */
function checkInet(f: FileRecord, byId: ReadonlyMap<number, FileRecord>): string | null {
  const n = f.inet;
  if (!n) return "inet socket without its record";
  if (n.address.length !== (n.family === "ipv4" ? 4 : 16)) return `${n.family} address of ${n.address.length} bytes`;
  if (n.port === 0 || n.port > 65535) return `TCP port ${n.port} out of range`;
  if (n.backlog > 0x7fffffff) return `listen backlog ${n.backlog} out of range`;
  if (n.options.v6only && n.family !== "ipv6") return "IPV6_V6ONLY on an ipv4 socket";
  for (const o of byId.values()) {
    const m = o.inet;
    if (o.id === f.id || !m || m.family !== n.family || m.port !== n.port || !m.address.every((b, i) => b === n.address[i])) continue;
    if (!(m.options.reuseport && n.options.reuseport)) return `inet sockets ${Math.min(o.id, f.id)} and ${Math.max(o.id, f.id)} listen on the same address and port without SO_REUSEPORT`;
  }
  return null;
}

/** Where a ghost file is recreated: an absolute path without ".", ".." or empty components (nor NUL). */
export function ghostPathProblem(path: string): string | null {
  if (!path.startsWith("/") || path.includes("\0")) return `path ${JSON.stringify(path)} is not absolute`;
  const parts = path.slice(1).split("/");
  if (parts.some((p) => p === "" || p === "." || p === "..")) return `path ${JSON.stringify(path)} is not a plain absolute path`;
  return null;
}

const S_IFMT = 0o170000, S_IFREG = 0o100000;

function checkGhosts(b: FilesImage): string | null {
  const ghosts = b.ghosts ?? [];
  const dup = firstDuplicate(ghosts.map((g) => g.id));
  if (dup !== undefined) return `ghosts: id ${dup} appears twice`;
  for (const [i, g] of ghosts.entries()) {
    const problem = ghostPathProblem(g.path) ?? ((g.mode & S_IFMT) !== S_IFREG ? `mode ${g.mode.toString(8)} is not a regular file's` : null);
    if (problem !== null) return `ghosts[${i}]: ${problem}`;
  }
  const ids = new Set(ghosts.map((g) => g.id));
  for (const [i, f] of b.files.entries()) {
    if (f.ghostId === undefined) continue;
    if (f.kind !== "reg") return `files[${i}]: a ${f.kind} cannot be a ghost file`;
    if (!ids.has(f.ghostId)) return `files[${i}]: ghost ${f.ghostId} is not in ghosts`;
  }
  return null;
}

const files: Check<FilesImage> = (b) => {
  const dup = firstDuplicate(b.files.map((f) => f.id));
  if (dup !== undefined) return `files: id ${dup} appears twice`;
  const empty = b.files.findIndex((f) => f.path === "");
  if (empty >= 0) return `files[${empty}]: empty path`;
  for (const [name, list] of [["pipes", b.pipes ?? []], ["fifos", b.fifos ?? []]] as const) {
    const d = firstDuplicate(list.map((p) => p.id));
    if (d !== undefined) return `${name}: id ${d} appears twice`;
    const over = list.findIndex((p) => p.data.length > p.size);
    if (over >= 0) return `${name}[${over}]: ${list[over]!.data.length} bytes buffered in a pipe of ${list[over]!.size}`;
  }
  const byId = new Map(b.files.map((f) => [f.id, f]));
  const fifos = new Set((b.fifos ?? []).map((p) => p.id));
  for (const [i, f] of b.files.entries()) {
    const problem = checkFileKind(f, byId, fifos);
    if (problem !== null) return `files[${i}]: ${problem}`;
  }
  return checkGhosts(b);
};

const manifest: Check<ManifestImage> = (b) => {
  if (b.hashAlg !== HASH_ALG) return `hashAlg: unknown hash algorithm ${JSON.stringify(b.hashAlg)} (this cr checks ${HASH_ALG})`;
  const seen = new Set<string>();
  for (const [i, f] of b.files.entries()) {
    if (f.name === "" || f.name.includes("/") || f.name.startsWith(".") || f.name.includes("\0")) {
      return `files[${i}]: bad file name ${JSON.stringify(f.name)}`;
    }
    if (seen.has(f.name)) return `files[${i}]: ${f.name} listed twice`;
    seen.add(f.name);
    if (!/^[0-9a-f]{32}$/.test(f.hash)) return `files[${i}]: ${f.name}: hash is not an ${HASH_ALG} digest`;
  }
  return null;
};

const CHECKS: { [K in ImageKind]: Check<ImageBody<K>> } = { inventory, tree, task, pagemap, files, manifest };

export function checkRecord<K extends ImageKind>(kind: K, body: ImageBody<K>): string | null {
  return (CHECKS[kind] as Check<ImageBody<K>>)(body);
}

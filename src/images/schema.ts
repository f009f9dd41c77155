// Every image record, defined once: its validator, from which its type is
// derived. Format 1.0 (see docs/images.md).
import { arr, big, bool, bytes, nonneg, nullable, num, obj, oneOf, optional, str } from "./validate.ts";

export const FORMAT = { major: 1, minor: 0 } as const;
export const MAGIC = "cr-images";
/** manifest.cbor's checksum: XXH3-128, as lower-case hex of its canonical form (see docs/images.md). */
export const HASH_ALG = "xxh3-128";

const itimer = obj({ intervalUs: nonneg, valueUs: nonneg });

export const inventory = obj({
  crVersion: str,
  arch: oneOf("x86_64"),
  pageSize: nonneg,
  kernel: str,
  dumpTime: str,
  rootPid: nonneg,
  options: obj({ leaveRunning: bool, shellJob: bool, tcpEstablished: bool }),
  /**
   * The dumping CPU's user XSAVE layout, which every thread's `xstate` is in:
   * the features the kernel enabled (XCR0), the size of the whole area, and
   * where each feature (bit >= 2) lies in it. Images without it (from an
   * older cr) are restored only where their XCR0 is this CPU's.
   */
  cpu: optional(obj({
    xcr0: big,
    xstateSize: nonneg,
    features: arr(obj({ bit: nonneg, offset: nonneg, size: nonneg }), 64),
  })),
});

export const tree = obj({
  tasks: arr(obj({
    pid: nonneg, ppid: nonneg, pgid: nonneg, sid: nonneg,
    threads: arr(nonneg),
    state: oneOf("alive", "zombie", "stopped"),
    /** A zombie's wait status (as waitpid reports it). */
    exitCode: optional(num),
  })),
  /**
   * --shell-job only: the ids the root had outside the tree (see
   * docs/images.md). `sid`: its session, led by a process outside the tree;
   * `pgid`: its process group, when led outside the tree; `foreground`: the
   * foreground process group of the session's terminal, when it was one of
   * the tree's groups (a task's pid) or `pgid`; `termios`: the modes of that
   * terminal (the kernel's struct termios), when the tree holds it.
   */
  external: optional(obj({ sid: nonneg, pgid: optional(nonneg), foreground: optional(nonneg), termios: optional(bytes) })),
});

export const vma = obj({
  start: nonneg, end: nonneg, prot: nonneg, flags: nonneg, offset: nonneg,
  kind: oneOf("anon", "file", "heap", "stack", "vdso", "vvar", "vvar_vclock", "vsyscall", "shmem"),
  path: optional(str),
  growsDown: bool,
  dumped: bool,
  /** kind "shmem": the shared memory object, a key of files.cbor's `shmem`. */
  shmemId: optional(nonneg),
  /** kind "file" of a deleted file: the ghost file it maps, a key of files.cbor's `ghosts`. */
  ghostId: optional(nonneg),
  /** Its memory protection key (x86 PKU, pkey_mprotect), when not the default 0: 1 .. 15. */
  pkey: optional(nonneg),
});

export const task = obj({
  pid: nonneg,
  comm: str,
  exe: str,
  /** The exe was deleted: the ghost file that is its content, a key of files.cbor's `ghosts`. */
  exeGhostId: optional(nonneg),
  cwd: str,
  root: str,
  umask: nonneg,
  personality: nonneg,
  creds: obj({
    uid: arr(nonneg, 4), gid: arr(nonneg, 4), groups: arr(nonneg, 65536),
    capInh: big, capPrm: big, capEff: big, capBnd: big, capAmb: big, noNewPrivs: bool,
    /** prctl(PR_GET_DUMPABLE): 0, 1 or 2. */
    dumpable: optional(nonneg),
  }),
  rlimits: arr(obj({ resource: nonneg, cur: big, max: big }), 64),
  sigactions: arr(obj({ sig: nonneg, handler: nonneg, flags: nonneg, restorer: nonneg, mask: big }), 64),
  itimers: obj({ real: itimer, virtual: itimer, prof: itimer }),
  /** POSIX timers (timer_create): id, clock, sigevent, and the setting at dump time. */
  posixTimers: optional(arr(obj({
    id: nonneg, clockId: num, signo: nonneg, notify: nonneg, tid: nonneg, sival: big,
    intervalNs: big, valueNs: big, overrun: nonneg,
  }), 256)),
  sharedPending: arr(bytes, 4096),
  /** arch_prctl(ARCH_GET_XCOMP_PERM): the xstate features the process may use, dynamic ones (AMX) once it asked. */
  xcompPerm: optional(big),
  /**
   * Seccomp filters (mode 2), each distinct kernel filter once: its classic
   * BPF program (struct sock_filter records, 8 bytes each) and its flags
   * (SECCOMP_FILTER_FLAG_LOG). Threads refer to them by index (`seccomp`).
   */
  seccompFilters: optional(arr(obj({ insns: bytes, flags: nonneg }), 4096)),
  threads: arr(obj({
    tid: nonneg,
    /** The thread's name (/proc/PID/task/TID/comm). */
    comm: optional(str),
    regs: bytes,
    xstate: bytes,
    sigmask: big,
    rseq: nullable(obj({ ptr: nonneg, len: nonneg, sig: nonneg })),
    tidAddress: nonneg,
    robustList: obj({ head: nonneg, len: nonneg }),
    altstack: obj({ sp: nonneg, flags: num, size: nonneg }),
    /** prctl(PR_GET_PDEATHSIG), when set. */
    pdeathSig: optional(nonneg),
    /** The thread's seccomp filter chain, indexes into `seccompFilters`, oldest (installed first) first. */
    seccomp: optional(arr(nonneg, 4096)),
    pending: arr(bytes, 4096),
  })),
  mm: obj({
    vmas: arr(vma),
    brk: nonneg, startBrk: nonneg, startCode: nonneg, endCode: nonneg, startData: nonneg, endData: nonneg,
    startStack: nonneg, argStart: nonneg, argEnd: nonneg, envStart: nonneg, envEnd: nonneg,
    auxv: bytes,
  }),
  fds: arr(obj({ fd: nonneg, fileId: nonneg, cloexec: bool })),
});

export const pagemap = obj({
  entries: arr(obj({ start: nonneg, pages: nonneg, offset: nonneg })),
});

/**
 * A unix domain socket. `state`: "connected" to `peer` (the other end's id in
 * files.cbor; without it the other end was closed), "listening" (bound to
 * `name`, with `backlog`) or "unbound" (made, neither bound nor connected).
 * `name`: sun_path's bytes (an abstract name starts with a 0 byte).
 * `shutdown`: RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2. `sndbuf`: SO_SNDBUF as
 * getsockopt showed it. `queue`: what it had to read, oldest first: each
 * message of a dgram or seqpacket socket, runs of a stream's bytes.
 */
export const unixSocket = obj({
  type: oneOf("stream", "dgram", "seqpacket"),
  state: oneOf("connected", "listening", "unbound"),
  peer: optional(nonneg),
  name: optional(bytes),
  backlog: optional(nonneg),
  shutdown: nonneg,
  sndbuf: nonneg,
  queue: arr(bytes, 1 << 16),
});

/**
 * An IPv4 or IPv6 socket: today a TCP socket listening, with no connection
 * waiting to be accepted. `address`: the bound address, network order (4
 * bytes for "ipv4", 16 for "ipv6"; all zeros: any address); `port` (1 ..
 * 65535); `backlog` as the kernel holds it (listen's argument capped at
 * net.core.somaxconn); `options`: those a restore sets again before bind.
 */
export const inetSocket = obj({
  family: oneOf("ipv4", "ipv6"),
  type: oneOf("stream"),
  state: oneOf("listening"),
  address: bytes,
  port: nonneg,
  backlog: nonneg,
  options: obj({ reuseaddr: bool, reuseport: bool, v6only: bool, nodelay: bool, keepalive: bool }),
});

export const files = obj({
  files: arr(obj({
    id: nonneg,
    kind: oneOf("reg", "chr", "dir", "pipe", "fifo", "memfd", "eventfd", "timerfd", "signalfd", "epoll", "tty", "inotify", "unix", "inet"),
    path: str,
    flags: nonneg,
    pos: nonneg,
    size: optional(nonneg),
    mtimeNs: optional(big),
    mode: optional(nonneg),
    rdev: optional(nonneg),
    /** kind "pipe": the pipe (its inode at dump time), a key of `pipes`. */
    pipeId: optional(nonneg),
    /** kind "memfd": the memfd's shared memory object, a key of `shmem`. */
    shmemId: optional(nonneg),
    /** kind "fifo": the named FIFO's buffer, a key of `fifos`. */
    fifoId: optional(nonneg),
    /** kind "reg" of a deleted file: its content, a key of `ghosts`; `path` is where it was. */
    ghostId: optional(nonneg),
    /** kind "eventfd": the counter (0 .. 2^64-2) and EFD_SEMAPHORE. */
    eventfd: optional(obj({ count: big, semaphore: bool })),
    /**
     * kind "timerfd": its clock, expirations not read yet, the flags of its
     * timerfd_settime, and the time left to the next expiration and the
     * period, in nanoseconds (both 0: disarmed).
     */
    timerfd: optional(obj({ clockid: nonneg, ticks: big, settimeFlags: nonneg, valueNs: big, intervalNs: big })),
    /** kind "signalfd": the signals it reads (bit N-1 = signal N). */
    signalfd: optional(obj({ sigmask: big })),
    /**
     * kind "epoll": every registration, as the fd number it was made under
     * (in a task that holds the epoll) and the file it is on (an `id` here).
     */
    epoll: optional(arr(obj({ tfd: nonneg, events: nonneg, data: big, fileId: nonneg }))),
    /**
     * kind "tty" (--shell-job): a description of the job's terminal, restored
     * as one of cr restore's own terminal. `ctty`: the terminal was the
     * controlling terminal of the session outside the tree.
     */
    tty: optional(obj({ ctty: bool })),
    /**
     * kind "inotify": every watch, in wd order: its wd, its IN_* mask (as the
     * kernel holds it) and the path of the watched file or directory.
     */
    inotify: optional(obj({ watches: arr(obj({ wd: nonneg, mask: nonneg, path: str }), 1 << 20) })),
    /** kind "unix": a unix domain socket (see unixSocket). */
    unix: optional(unixSocket),
    /** kind "inet": an IPv4 or IPv6 socket (see inetSocket). */
    inet: optional(inetSocket),
  })),
  /** Every pipe the tree holds an end of: capacity and the bytes buffered at dump time. */
  pipes: optional(arr(obj({ id: nonneg, size: nonneg, data: bytes }))),
  /** Every named FIFO the tree holds open: capacity and buffered bytes, like `pipes` (ids are dump-local). */
  fifos: optional(arr(obj({ id: nonneg, size: nonneg, data: bytes }))),
  /**
   * Every shared memory object (anonymous shared mapping, memfd) the tree maps
   * or holds: its size and its non-zero pages, stored in shmem-ID.img.
   */
  shmem: optional(arr(obj({
    id: nonneg, size: nonneg, name: str,
    pages: arr(obj({ start: nonneg, pages: nonneg, offset: nonneg })),
  }))),
  /**
   * Every deleted ("ghost") regular file the tree holds by fd, maps or runs
   * as its exe, once per file: the path it had, its size, mode, owner and
   * mtime, and its non-zero pages, stored in ghost-ID.img like `shmem`'s.
   */
  ghosts: optional(arr(obj({
    id: nonneg, path: str, size: nonneg, mode: nonneg, uid: nonneg, gid: nonneg, mtimeNs: big,
    pages: arr(obj({ start: nonneg, pages: nonneg, offset: nonneg })),
  }))),
});

export const manifest = obj({
  hashAlg: str,
  files: arr(obj({ name: str, size: nonneg, hash: str }), 1 << 20),
});

export const RECORDS = { inventory, tree, task, pagemap, files, manifest } as const;
export type ImageKind = keyof typeof RECORDS;
export type ImageBody<K extends ImageKind> = ReturnType<(typeof RECORDS)[K]>;

export type InventoryImage = ImageBody<"inventory">;
export type TreeImage = ImageBody<"tree">;
export type TaskImage = ImageBody<"task">;
export type VmaImage = ReturnType<typeof vma>;
export type PagemapImage = ImageBody<"pagemap">;
export type FilesImage = ImageBody<"files">;
export type UnixSocketImage = ReturnType<typeof unixSocket>;
export type InetSocketImage = ReturnType<typeof inetSocket>;
export type GhostImage = NonNullable<FilesImage["ghosts"]>[number];
export type ManifestImage = ImageBody<"manifest">;

/** Semantic checks beyond types: page alignment, order, bounds. Returns a problem or null. */
export function checkPagemap(p: PagemapImage, pageSize: number, pagesFileSize: number): string | null {
  let prevEnd = 0;
  let expectOffset = 0;
  for (const [i, e] of p.entries.entries()) {
    if (e.start % pageSize !== 0 || e.offset % pageSize !== 0) return `entries[${i}]: not page aligned`;
    if (e.pages === 0) return `entries[${i}]: empty run`;
    if (e.start < prevEnd) return `entries[${i}]: overlaps or out of order`;
    if (e.offset !== expectOffset) return `entries[${i}]: offset ${e.offset}, expected ${expectOffset}`;
    prevEnd = e.start + e.pages * pageSize;
    expectOffset += e.pages * pageSize;
  }
  if (expectOffset !== pagesFileSize) return `pages cover ${expectOffset} bytes, the pages file has ${pagesFileSize}`;
  return null;
}

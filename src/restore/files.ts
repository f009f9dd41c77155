// Every open file description the restored tree needs, created by cr itself
// before the first fork (files re-opened at their position, pipes re-created
// and named FIFOs re-opened with their buffered bytes, shared memory objects
// as memfds, eventfds, timerfds, signalfds and empty epolls from their
// recorded state, inotify instances with their watches at their wds, unix
// sockets with their queues and listening TCP sockets (see sockets.ts); deleted files recreated, opened and unlinked again, see
// ghost.ts): the tasks only dup them to their fd numbers (and make
// their epoll registrations, see EpollRegistration), so descriptions shared
// by dup or fork stay shared, and a file that cannot be opened fails the
// restore before any process exists.
import { statSync } from "node:fs";
import { CrError } from "../errors.ts";
import type { FilesImage } from "../images/index.ts";
import { shmemFile } from "../images/index.ts";
import * as native from "../native/index.ts";
import { writeRuns } from "./runs.ts";
import { openGhosts, type GhostFds, type GhostMapFds, type GhostUse } from "./ghost.ts";
import { openInetListener, SocketMaker } from "./sockets.ts";

const O_ACCMODE = 3, O_WRONLY = 1, O_RDWR = 2;
const O_CREAT = 0o100, O_EXCL = 0o200, O_NOCTTY = 0o400, O_TRUNC = 0o1000, O_NONBLOCK = 0o4000;
/** Open flags that only mattered when the file was first opened: never re-applied. */
const REOPEN_FLAGS = ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY);

export interface SharedFds {
  /** The shared fd table, ascending (the order libcr compacts it in). */
  fds: number[];
  /** files.cbor id -> index in `fds`. */
  index: Map<number, number>;
  /** Shared memory object id -> index in `fds` of its memfd (for mappings). */
  shmemIndex: Map<number, number>;
  /** Ghost file id -> indexes in `fds` of its read-only and read-write fds (for mappings and the exe). */
  ghostIndex: Map<number, GhostMapFds>;
  /** Every fd cr opened for this, table or not: close them all once the tree is forked. */
  opened: number[];
}

export function closeAll(fds: number[]): void {
  for (const fd of fds) native.closeFd(fd);
}

type Shmem = NonNullable<FilesImage["shmem"]>[number];
type FileRecord = FilesImage["files"][number];

/**
 * An inotify instance with the watches of `f`, each at its wd (see
 * zig/lib/inotify.zig), at a number >= minFd. A path that is gone or is now
 * the same file as another watch's fails the restore, naming it.
 */
function makeInotify(f: FileRecord, minFd: number): number {
  if (!f.inotify) throw new CrError("restore", `files.cbor: inotify ${f.id} without its watches`);
  const fd = native.makeInotify(minFd);
  try {
    let placed = 0;
    for (const w of f.inotify.watches) {
      native.addInotifyWatch(fd, w.path, w.mask, w.wd, placed);
      placed = w.wd;
    }
  } catch (e) {
    native.closeFd(fd);
    throw e;
  }
  return fd;
}

/** An eventfd, timerfd, signalfd, inotify or (empty) epoll as recorded, at a number >= minFd. */
function makeAnon(f: FileRecord, minFd: number): number {
  const missing = () => new CrError("restore", `files.cbor: ${f.kind} ${f.id} without its state`);
  switch (f.kind) {
    case "eventfd":
      if (!f.eventfd) throw missing();
      return native.makeEventfd(f.eventfd.count, f.eventfd.semaphore, minFd);
    case "timerfd":
      if (!f.timerfd) throw missing();
      return native.makeTimerfd(f.timerfd, minFd);
    case "signalfd":
      if (!f.signalfd) throw missing();
      return native.makeSignalfd(f.signalfd.sigmask, minFd);
    case "inotify":
      return makeInotify(f, minFd);
    default:
      return native.makeEpoll(minFd);
  }
}
const ANON = new Set<FileRecord["kind"]>(["eventfd", "timerfd", "signalfd", "epoll", "inotify"]);

/** A memfd holding shared memory object `o`, its pages read from DIR/shmem-ID.img. */
function makeShmem(o: Shmem, dir: string, minFd: number): number {
  const name = o.name.startsWith("/memfd:") ? o.name.slice("/memfd:".length) : "cr-shmem";
  const fd = native.makeMemfd(name, o.size, minFd);
  try {
    writeRuns(fd, dir, shmemFile(o.id), o.pages, o.size);
  } catch (e) {
    native.closeFd(fd);
    throw e;
  }
  return fd;
}

/**
 * Open the descriptions of `ids`, the shared memory objects `shmemIds` and
 * the ghost files the mappings and exes need (`ghostUses`), their content
 * from DIR, at fd numbers >= minFd.
 */
export function openSharedFiles(
  files: FilesImage, ids: ReadonlySet<number>, shmemIds: ReadonlySet<number>, dir: string, minFd: number,
  ghostUses: ReadonlyMap<number, GhostUse> = new Map(), log: (msg: string) => void = () => {},
  /** --shell-job: what to open for every "tty" description (cr's own terminal, see shelljob.ts). */
  terminal?: string,
): SharedFds {
  const byId = new Map(files.files.map((f) => [f.id, f]));
  const pipes = new Map((files.pipes ?? []).map((p) => [p.id, p]));
  const shmem = new Map((files.shmem ?? []).map((o) => [o.id, o]));
  const memfds = new Map<number, number>();
  const memfdOf = (id: number): number => {
    const o = shmem.get(id);
    if (!o) throw new CrError("restore", `files.cbor has no shared memory object ${id}`);
    let fd = memfds.get(id);
    if (fd === undefined) {
      fd = makeShmem(o, dir, minFd);
      opened.push(fd);
      memfds.set(id, fd);
    }
    return fd;
  };
  const fifos = new Map((files.fifos ?? []).map((p) => [p.id, p]));
  const heldFifos = new Set<number>();
  /**
   * cr's own O_RDWR description of FIFO `f`, opened once per FIFO before the
   * tree's: it holds the FIFO open as reader and writer, so that opening the
   * tree's read-only or write-only descriptions neither blocks nor fails, and
   * takes the buffered bytes back. Closed with the rest once the tree is
   * forked; the tree's own descriptions keep the FIFO (and its bytes) then.
   */
  const holdFifo = (f: FileRecord): void => {
    const fifo = f.fifoId === undefined ? undefined : fifos.get(f.fifoId);
    if (!fifo) throw new CrError("restore", `files.cbor: FIFO ${f.id} without a fifo record`);
    if (heldFifos.has(fifo.id)) return;
    // Opening something else read-write could have effects of its own.
    let isFifo = false;
    try {
      isFifo = statSync(f.path).isFIFO();
    } catch (e) {
      throw new CrError("restore", `cannot find the named FIFO ${f.path}`, { cause: e });
    }
    if (!isFifo) throw new CrError("restore", `${f.path} is no longer a named FIFO`);
    const holder = native.openFile(f.path, O_RDWR | O_NONBLOCK, 0, minFd);
    opened.push(holder);
    heldFifos.add(fifo.id);
    native.fillFifo(holder, fifo.size, fifo.data);
  };
  const made = new Map<number, { ends: [number, number]; taken: [boolean, boolean] }>();
  const opened: number[] = [];
  const pairs: { id: number; fd: number }[] = [];
  let ghosts: GhostFds = { files: new Map(), maps: new Map(), opened: [] };
  const sockets = new SocketMaker(byId, minFd, opened);
  try {
    // Deleted files first: recreated, opened and unlinked again in one go.
    ghosts = openGhosts(files, ids, ghostUses, dir, minFd, (f) => f.flags & REOPEN_FLAGS, log);
    opened.push(...ghosts.opened);
    for (const id of [...ids].sort((a, b) => a - b)) {
      const f = byId.get(id);
      if (!f) throw new CrError("restore", `files.cbor has no file ${id}`);
      let fd: number;
      if (f.kind === "pipe") {
        const pipe = f.pipeId === undefined ? undefined : pipes.get(f.pipeId);
        if (!pipe) throw new CrError("restore", `files.cbor: file ${id} is a pipe without a pipe record`);
        let m = made.get(pipe.id);
        if (!m) {
          m = { ends: native.makePipe(pipe.size, pipe.data, minFd), taken: [false, false] };
          opened.push(...m.ends);
          made.set(pipe.id, m);
        }
        const end = (f.flags & O_ACCMODE) === O_WRONLY ? 1 : 0;
        if ((f.flags & O_ACCMODE) === O_RDWR) throw new CrError("restore", `files.cbor: pipe end ${id} is open read-write`);
        if (m.taken[end]) {
          // A second description of the same end (opened through /proc/PID/fd).
          fd = native.openFile(`/proc/self/fd/${m.ends[end]}`, f.flags & O_ACCMODE, 0, minFd);
          opened.push(fd);
        } else {
          fd = m.ends[end];
          m.taken[end] = true;
        }
        native.setFileFlags(fd, f.flags & ~O_ACCMODE);
      } else if (f.kind === "memfd") {
        if (f.shmemId === undefined) throw new CrError("restore", `files.cbor: memfd ${id} without its object`);
        fd = native.openFile(`/proc/self/fd/${memfdOf(f.shmemId)}`, f.flags & REOPEN_FLAGS, f.pos, minFd);
        opened.push(fd);
      } else if (f.kind === "tty") {
        // A new description of cr's terminal, not a dup of cr's own: the job's flags stay the job's.
        if (terminal === undefined) throw new CrError("restore", `files.cbor: tty ${id} needs --shell-job`);
        fd = native.openFile(terminal, (f.flags & REOPEN_FLAGS) | O_NOCTTY, 0, minFd);
        opened.push(fd);
      } else if (ANON.has(f.kind)) {
        fd = makeAnon(f, minFd);
        opened.push(fd);
        native.setFileFlags(fd, f.flags & ~O_ACCMODE);
      } else if (f.kind === "unix") {
        fd = sockets.open(f);
        native.setFileFlags(fd, f.flags & ~O_ACCMODE);
      } else if (f.kind === "inet") {
        fd = openInetListener(f, minFd);
        opened.push(fd);
        native.setFileFlags(fd, f.flags & ~O_ACCMODE);
      } else if (f.ghostId !== undefined) {
        fd = ghosts.files.get(id)!;
      } else {
        if (f.kind === "fifo") holdFifo(f);
        fd = native.openFile(f.path, f.flags & REOPEN_FLAGS, f.kind === "reg" ? f.pos : 0, minFd);
        opened.push(fd);
      }
      pairs.push({ id, fd });
    }
    for (const id of shmemIds) memfdOf(id);
  } catch (e) {
    closeAll(opened);
    throw e;
  }
  // One table, ascending: file descriptions, memfds and ghosts' mapping fds (each fd is in one of them only).
  const ghostMapFds = [...ghosts.maps.values()].flatMap((m) => [m.read, m.write].filter((fd) => fd !== undefined));
  const fds = [...pairs.map((p) => p.fd), ...memfds.values(), ...ghostMapFds].sort((a, b) => a - b);
  const at = new Map(fds.map((fd, i) => [fd, i]));
  const slot = (fd: number | undefined) => (fd === undefined ? undefined : at.get(fd));
  return {
    fds, opened,
    index: new Map(pairs.map((p) => [p.id, at.get(p.fd)!])),
    shmemIndex: new Map([...memfds].map(([id, fd]) => [id, at.get(fd)!])),
    ghostIndex: new Map([...ghosts.maps].map(([id, m]) => [id, { read: slot(m.read), write: slot(m.write) }])),
  };
}

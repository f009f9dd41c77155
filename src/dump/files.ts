// Open files of the frozen tree: one table of open file descriptions for all
// tasks (fds that share a description, by dup or by fork, are found with
// kcmp and point to one entry), and each task's fds into it. Supported:
// regular files (deleted ones as ghosts, see ghost.ts), directories, character devices by path, pipes and named
// FIFOs (with the bytes buffered in them, read without consuming them),
// memfds (content in the ShmemTable), eventfd, timerfd, signalfd and
// epoll from what their fdinfo shows, inotify (see inotify.ts), unix
// sockets (see sockets.ts) and listening TCP sockets (see inet.ts). Anything else stops the dump with the
// fd, its target and the pid named.
import { closeSync, constants, openSync, readFileSync, readlinkSync, statSync, type BigIntStats } from "node:fs";
import { CrError } from "../errors.ts";
import type { FilesImage } from "../images/index.ts";
import * as native from "../native/index.ts";
import {
  parseEpollTargets, parseEventfd, parseFdinfo, parseSignalfd, parseTimerfd, type EpollTarget, type FdInfo,
} from "../proc/fdinfo.ts";
import { listFds } from "../proc/read.ts";
import type { ShmemTable } from "./shmem.ts";
import { deletedFileEntry, isDeleted, type GhostTable } from "./ghost.ts";
import { terminalKind, type TerminalEntry } from "./shelljob.ts";
import { INOTIFY_TARGET, inotifyWatches } from "./inotify.ts";
import { SocketTable } from "./sockets.ts";

type FileEntry = FilesImage["files"][number];
type PipeEntry = NonNullable<FilesImage["pipes"]>[number];
type EpollEntry = NonNullable<FileEntry["epoll"]>[number];

export interface DumpFd {
  fd: number;
  fileId: number;
  cloexec: boolean;
}

const O_CLOEXEC = 0o2000000;

/**
 * An epoll seen at dump: its registrations as fdinfo lists them, each to be
 * matched with the file it is on (`fileId`) in a task holding the epoll.
 */
interface PendingEpoll {
  /** The first task and fd seen holding it, for the error message. */
  pid: number;
  fd: number;
  targets: (EpollTarget & { toff: number; fileId?: number })[];
}

const ANON_KINDS = {
  "anon_inode:[eventfd]": "eventfd",
  "anon_inode:[timerfd]": "timerfd",
  "anon_inode:[signalfd]": "signalfd",
  "anon_inode:[eventpoll]": "epoll",
} as const;

/** What fdinfo adds for a kind of anonymous-inode file. */
function anonState(kind: (typeof ANON_KINDS)[keyof typeof ANON_KINDS], info: FdInfo): Partial<FileEntry> {
  switch (kind) {
    case "eventfd": {
      const e = parseEventfd(info);
      // Kernels before 6.8 do not show EFD_SEMAPHORE: taken as not set.
      return { eventfd: { count: e.count, semaphore: e.semaphore ?? false } };
    }
    case "timerfd":
      return { timerfd: parseTimerfd(info) };
    case "signalfd":
      return { signalfd: { sigmask: parseSignalfd(info) } };
    case "epoll":
      return {};
  }
}

/** Open file descriptions seen so far, across every task of the tree. */
export class FileTable {
  readonly files: FileEntry[] = [];
  readonly pipes: PipeEntry[] = [];
  readonly fifos: PipeEntry[] = [];
  /** Candidates for kcmp, by "dev:ino" of what the fd points to. */
  private readonly byInode = new Map<string, { pid: number; fd: number; id: number }[]>();
  /** FIFO id by "dev:ino" of the FIFO. */
  private readonly fifoIds = new Map<string, number>();
  /** By file id. */
  private readonly epolls = new Map<number, PendingEpoll>();
  private readonly sockets = new SocketTable();

  /** `terminal` describes an fd to a terminal, or refuses it (see shelljob.ts). */
  constructor(private readonly shmem: ShmemTable, private readonly ghosts: GhostTable, private readonly terminal: TerminalEntry) {}

  /** The id of an existing description that (pid, fd) shares, if any. */
  private known(key: string, pid: number, fd: number): number | undefined {
    for (const c of this.byInode.get(key) ?? []) {
      if (native.sameFile(c.pid, c.fd, pid, fd)) return c.id;
    }
    return undefined;
  }

  private add(key: string, pid: number, fd: number, entry: Omit<FileEntry, "id">): number {
    const id = this.files.length + 1;
    this.files.push({ id, ...entry });
    const list = this.byInode.get(key) ?? [];
    list.push({ pid, fd, id });
    this.byInode.set(key, list);
    return id;
  }

  /** The bytes buffered in the pipe or FIFO of (pid, fd), through a read description of our own (tee needs one). */
  private peek(pid: number, fd: number, what: string): { size: number; data: Uint8Array } {
    let peek: number;
    try {
      // Non-blocking: opening a FIFO to read never waits for a writer.
      peek = openSync(`/proc/${pid}/fd/${fd}`, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      throw new CrError("dump", `cannot open ${what} of fd ${fd} to read its buffer`, { pid, cause: e });
    }
    try {
      return native.peekPipe(peek, pid);
    } finally {
      closeSync(peek);
    }
  }

  private addPipe(pid: number, fd: number, ino: number): void {
    if (this.pipes.some((p) => p.id === ino)) return;
    this.pipes.push({ id: ino, ...this.peek(pid, fd, `pipe:[${ino}]`) });
  }

  /** The FIFO of (pid, fd), its buffer read once however many descriptions it has. */
  private addFifo(pid: number, fd: number, key: string, path: string): number {
    let id = this.fifoIds.get(key);
    if (id === undefined) {
      id = this.fifos.length + 1;
      this.fifos.push({ id, ...this.peek(pid, fd, `FIFO ${path}`) });
      this.fifoIds.set(key, id);
    }
    return id;
  }

  /** A new description of (pid, fd): its entry, or an error naming why it is not supported. */
  private describe(pid: number, fd: number, target: string, st: BigIntStats, info: FdInfo, text: string): Omit<FileEntry, "id"> {
    const unsupported = (why: string) => new CrError("dump", `unsupported: fd ${fd} -> ${target} (${why})`, { pid });
    const flags = info.flags & ~O_CLOEXEC;
    const pipe = /^pipe:\[(\d+)\]$/.exec(target);
    if (pipe) {
      const ino = Number(pipe[1]);
      this.addPipe(pid, fd, ino);
      return { kind: "pipe", path: target, flags, pos: 0, pipeId: ino };
    }
    if (target.startsWith("/memfd:") && target.endsWith(" (deleted)")) {
      const ino = Number(st.ino);
      this.shmem.add(ino, target.slice(0, -" (deleted)".length), `/proc/${pid}/fd/${fd}`, pid);
      return { kind: "memfd", path: target, flags, pos: info.pos, shmemId: ino };
    }
    if (target === INOTIFY_TARGET) return { kind: "inotify", path: target, flags, pos: 0, inotify: { watches: inotifyWatches(pid, fd, text) } };
    if (target in ANON_KINDS) {
      const kind = ANON_KINDS[target as keyof typeof ANON_KINDS];
      try {
        return { kind, path: target, flags, pos: 0, ...anonState(kind, info) };
      } catch (e) {
        throw unsupported(`cannot read its state: ${(e as Error).message}`);
      }
    }
    const sock = /^socket:\[(\d+)\]$/.exec(target);
    if (sock) return { path: target, flags, pos: 0, ...this.sockets.describe(pid, fd, Number(sock[1]), target) };
    if (!target.startsWith("/")) throw unsupported("this kind of file is not supported yet");
    // Restore opens files before any task exists: a process's own /proc
    // directory (its maps, status, ...) is not there yet, or is someone else's.
    if (/^\/proc\/\d+(\/|$)/.test(target)) throw unsupported("a file of a process's own /proc directory is not supported yet");
    if (isDeleted(target, st)) return deletedFileEntry(this.ghosts, pid, fd, target, st, flags, info.pos);
    if (st.isFIFO()) {
      return { kind: "fifo", path: target, flags, pos: 0, mode: Number(st.mode), fifoId: this.addFifo(pid, fd, `${st.dev}:${st.ino}`, target) };
    }
    let kind: "reg" | "dir" | "chr";
    if (st.isFile()) kind = "reg";
    else if (st.isDirectory()) kind = "dir";
    else if (st.isCharacterDevice()) {
      if (terminalKind(target) !== null) return this.terminal(pid, fd, target, Number(st.rdev), Number(st.mode), flags);
      kind = "chr";
    } else throw unsupported("this kind of file is not supported yet");
    return {
      kind, path: target, flags, pos: info.pos, mode: Number(st.mode),
      ...(kind === "reg" ? { size: Number(st.size), mtimeNs: st.mtimeNs } : {}),
      ...(kind === "chr" ? { rdev: Number(st.rdev) } : {}),
    };
  }

  /** An epoll's registrations, to be matched with their files (see resolveEpolls). */
  private addEpoll(pid: number, fd: number, id: number, text: string, target: string): void {
    let targets: EpollTarget[];
    try {
      targets = parseEpollTargets(text);
    } catch (e) {
      throw new CrError("dump", `unsupported: fd ${fd} -> ${target} (cannot read its registrations: ${(e as Error).message})`, { pid });
    }
    // kcmp names a registration by its fd number and its rank among those
    // under the same number, in the order fdinfo lists them.
    const seen = new Map<number, number>();
    this.epolls.set(id, {
      pid, fd,
      targets: targets.map((t) => {
        const toff = seen.get(t.tfd) ?? 0;
        seen.set(t.tfd, toff + 1);
        return { ...t, toff };
      }),
    });
  }

  /**
   * Match the registrations of the epolls task `pid` holds with its fds: a
   * registration is on the file fd `tfd` holds now only if kcmp says so (the
   * fd may have been closed, or reused for another file, since).
   */
  private resolveEpolls(pid: number, fds: DumpFd[]): void {
    for (const { fd, fileId } of fds) {
      const ep = this.epolls.get(fileId);
      if (!ep) continue;
      for (const t of ep.targets) {
        if (t.fileId !== undefined) continue;
        const held = fds.find((x) => x.fd === t.tfd);
        if (held && native.epollTargetIs(pid, fd, t.tfd, t.toff)) t.fileId = held.fileId;
      }
    }
  }

  /** Every fd of frozen task `pid`, as references into the table. */
  collect(pid: number): DumpFd[] {
    const fds: DumpFd[] = [];
    for (const fd of listFds(pid)) {
      const link = `/proc/${pid}/fd/${fd}`;
      let target: string;
      let st: BigIntStats;
      let text: string;
      let info: FdInfo;
      try {
        target = readlinkSync(link);
        st = statSync(link, { bigint: true });
        text = readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
        info = parseFdinfo(text);
      } catch (e) {
        throw new CrError("dump", `fd ${fd} vanished while being read`, { pid, cause: e });
      }
      const key = `${st.dev}:${st.ino}`;
      let id = this.known(key, pid, fd);
      if (id === undefined) {
        id = this.add(key, pid, fd, this.describe(pid, fd, target, st, info, text));
        if (this.files[id - 1]!.kind === "epoll") this.addEpoll(pid, fd, id, text, target);
      }
      fds.push({ fd, fileId: id, cloexec: (info.flags & O_CLOEXEC) !== 0 });
    }
    this.resolveEpolls(pid, fds);
    return fds;
  }

  /** The epoll registrations, each on its file; one that no task could match fails the dump. */
  private epollEntries(id: number): EpollEntry[] {
    const ep = this.epolls.get(id)!;
    return ep.targets.map((t) => {
      if (t.fileId === undefined) {
        throw new CrError("dump", `unsupported: fd ${ep.fd} -> anon_inode:[eventpoll] (its registration of fd ${t.tfd} is on a file ` +
          `that no task holding the epoll has at fd ${t.tfd} any more)`, { pid: ep.pid });
      }
      return { tfd: t.tfd, events: t.events, data: t.data, fileId: t.fileId };
    });
  }

  image(): FilesImage {
    const peers = this.sockets.peers(this.files);
    const files = this.files.map((f) => {
      if (f.kind === "epoll") return { ...f, epoll: this.epollEntries(f.id) };
      const peer = peers.get(f.id);
      return f.unix && peer !== undefined ? { ...f, unix: { ...f.unix, peer } } : f;
    });
    return { files, pipes: this.pipes, fifos: this.fifos, shmem: this.shmem.objects, ghosts: this.ghosts.ghosts };
  }
}

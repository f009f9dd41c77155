// Sockets of the frozen tree. Supported: unix sockets connected to another
// socket the tree holds (socketpair, or both ends of an accepted connection),
// or whose other end was closed, with what each has queued to read (peeked
// without consuming it, through a copy of the fd taken with pidfd_getfd);
// listening unix sockets with no connection waiting; unix sockets neither
// bound nor connected. sock_diag (zig/lib/unixdiag.zig) tells the type,
// state, peer, queue lengths, shutdown state and name. Anything else (other
// families, a peer outside the tree, fds in flight ...) stops the dump with
// the fd, the socket and the pid named.
import { CrError } from "../errors.ts";
import type { FilesImage, InetSocketImage, UnixSocketImage } from "../images/index.ts";
import * as native from "../native/index.ts";
import { unixName } from "../show/names.ts";
import { describeInet, isTcp } from "./inet.ts";

type FileEntry = FilesImage["files"][number];

const AF_UNIX = 1, AF_INET = 2, AF_INET6 = 10, AF_NETLINK = 16, AF_PACKET = 17;
/** A socket's record in files.cbor: its kind and the kind's record. */
export type SocketRecord = { kind: "unix"; unix: UnixSocketImage } | { kind: "inet"; inet: InetSocketImage };
const SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_RAW = 3, SOCK_SEQPACKET = 5;
const TCP_CLOSE = 7, TCP_LISTEN = 10;
const UNIX_TYPES: Record<number, UnixSocketImage["type"]> = { [SOCK_STREAM]: "stream", [SOCK_DGRAM]: "dgram", [SOCK_SEQPACKET]: "seqpacket" };

/** What kind of socket a non-unix one is, for the refusal. */
export function socketKind(o: native.SockOpts): string {
  if (o.domain === AF_INET || o.domain === AF_INET6) {
    const v = o.domain === AF_INET ? "IPv4" : "IPv6";
    if (o.type === SOCK_STREAM) return `a TCP socket (${v})`;
    if (o.type === SOCK_DGRAM) return `a UDP socket (${v})`;
    if (o.type === SOCK_RAW) return `a raw ${v} socket`;
    return `an ${v} socket of type ${o.type}`;
  }
  if (o.domain === AF_NETLINK) return `a netlink socket (protocol ${o.protocol})`;
  if (o.domain === AF_PACKET) return "a packet socket";
  return `a socket of address family ${o.domain}`;
}

interface Seen {
  pid: number;
  fd: number;
  target: string;
  /** The peer's inode (0: closed), for a connected socket. */
  peerIno?: number;
}

/** The unix sockets seen so far; their peers are matched once every task's fds are (see peers). */
export class SocketTable {
  /** By socket inode. */
  private readonly seen = new Map<number, Seen>();

  /** A new socket (inode `ino`) at fd `fd` of `pid`: its record, or an error naming why it is not supported. */
  describe(pid: number, fd: number, ino: number, target: string): SocketRecord {
    const unsupported = (why: string) => new CrError("dump", `unsupported: fd ${fd} -> ${target} (${why})`, { pid });
    const copy = native.grabFd(pid, fd);
    try {
      const opts = native.sockOpts(copy, pid);
      if (isTcp(opts)) return { kind: "inet", inet: describeInet(pid, ino, copy, opts, unsupported) };
      if (opts.domain !== AF_UNIX) throw unsupported(`${socketKind(opts)}: only unix sockets and listening TCP sockets are supported`);
      return { kind: "unix", unix: this.describeUnix(pid, fd, ino, target, copy, opts, unsupported) };
    } finally {
      native.closeFd(copy);
    }
  }

  private describeUnix(
    pid: number, fd: number, ino: number, target: string, copy: number, opts: native.SockOpts, unsupported: (why: string) => CrError,
  ): UnixSocketImage {
    const d = native.unixDiag(ino, pid);
    const type = d ? UNIX_TYPES[d.type] : undefined;
    if (!d || !type) throw unsupported(`a unix socket of type ${d?.type ?? opts.type} that sock_diag does not show`);
    const what = `a unix ${type} socket`;
    const base = { type, shutdown: d.shutdown, sndbuf: Math.max(0, opts.sndbuf), queue: [] as Uint8Array[] };
    if (d.peer !== null) {
      let queue: Uint8Array[];
      try {
        queue = native.peekQueue(copy, d.type, d.shutdown, pid);
      } catch (e) {
        throw unsupported(`${what}: cannot read its queue: ${(e as Error).message}`);
      }
      this.seen.set(ino, { pid, fd, target, peerIno: d.peer });
      return { ...base, state: "connected", queue };
    }
    this.seen.set(ino, { pid, fd, target });
    if (d.state === TCP_LISTEN) {
      if (d.rqueue > 0) throw unsupported(`a listening unix ${type} socket with ${d.rqueue} connection(s) waiting to be accepted`);
      if (!d.name) throw unsupported(`a listening unix ${type} socket without a name`);
      const name = pathName(d.name);
      if (name[0] !== 0 && name[0] !== 0x2f) throw unsupported(`a listening unix socket bound to the relative path ${unixName(name)}`);
      return { ...base, state: "listening", name, backlog: d.wqueue };
    }
    if (d.state === TCP_CLOSE && !d.name) return { ...base, state: "unbound" };
    if (d.name) throw unsupported(`${what} bound to ${unixName(d.name)} but neither listening nor connected: not supported yet`);
    throw unsupported(`${what} in state ${d.state}`);
  }

  /**
   * Every connected socket's peer as a file id (ids of `files` by inode in
   * their `socket:[INODE]` path); a peer the tree does not hold, or that is
   * not connected back, fails the dump.
   */
  peers(files: FileEntry[]): Map<number, number | undefined> {
    const idOf = new Map<number, number>();
    for (const f of files) if (f.kind === "unix") idOf.set(inodeOf(f.path), f.id);
    const out = new Map<number, number | undefined>();
    for (const f of files) {
      if (f.kind !== "unix" || f.unix?.state !== "connected") continue;
      const ino = inodeOf(f.path);
      const s = this.seen.get(ino)!;
      if (s.peerIno === 0) {
        out.set(f.id, undefined);
        continue;
      }
      const peer = idOf.get(s.peerIno!);
      const back = this.seen.get(s.peerIno!)?.peerIno;
      const why = peer === undefined ? `connected to socket:[${s.peerIno}], which no task of the dumped tree holds`
        : back !== ino ? `connected to socket:[${s.peerIno}], which is not connected back to it` : null;
      if (why !== null) throw new CrError("dump", `unsupported: fd ${s.fd} -> ${s.target} (a unix ${f.unix.type} socket ${why})`, { pid: s.pid });
      out.set(f.id, peer);
    }
    return out;
  }
}

/** A path name as the kernel shows it ends with a 0 byte: the path is what comes before. Abstract names are kept whole. */
function pathName(name: Uint8Array): Uint8Array {
  if (name[0] === 0) return name;
  const end = name.indexOf(0);
  return end < 0 ? name : name.slice(0, end);
}

function inodeOf(path: string): number {
  return Number(/^socket:\[(\d+)\]$/.exec(path)?.[1] ?? 0);
}

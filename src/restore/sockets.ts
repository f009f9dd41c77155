// Unix sockets of the restored tree, made by cr before the first fork like
// every other open file description: a connected socket and its peer as one
// socketpair, each end's queue put back by sending it from the other end,
// then each end's send buffer and shutdown state; a socket whose peer was
// closed as a pair whose other end is closed once its queue is in; a
// listening socket bound to its name again (a stale socket file at its path
// removed, a name somebody listens at refused: "address in use") and
// listening with its backlog; an unbound socket as a new one. A listening
// TCP socket: a new one with its options, bound to its address and port and
// listening with its backlog; a port somebody else holds fails the restore
// ("address in use: 0.0.0.0:8000") before any process exists.
import { CrError } from "../errors.ts";
import type { FilesImage, UnixSocketImage } from "../images/index.ts";
import { INET_OPT } from "../native/abi.ts";
import * as native from "../native/index.ts";
import { inetEndpoint } from "../show/names.ts";

type FileRecord = FilesImage["files"][number];

const SOCK_TYPES: Record<UnixSocketImage["type"], number> = { stream: 1, dgram: 2, seqpacket: 5 };

export class SocketMaker {
  /** Peers made with a socket opened earlier, by file id, not handed out yet. */
  private readonly ends = new Map<number, number>();

  /** `opened` gets every fd made (the caller closes them once the tree is forked, or on failure). */
  constructor(private readonly byId: ReadonlyMap<number, FileRecord>, private readonly minFd: number, private readonly opened: number[]) {}

  /** The socket of file `f` (kind "unix"), at a number >= minFd, non-blocking until the caller sets its flags. */
  open(f: FileRecord): number {
    const u = f.unix;
    if (!u) throw new CrError("restore", `files.cbor: unix socket ${f.id} without its record`);
    const made = this.ends.get(f.id);
    if (made !== undefined) {
      this.ends.delete(f.id);
      return made;
    }
    const type = SOCK_TYPES[u.type];
    if (u.state !== "connected") {
      const fd = native.makeUnixSocket(type, u.name ?? null, u.state === "listening" ? u.backlog ?? 0 : null, this.minFd);
      this.opened.push(fd);
      native.finishSocket(fd, u.sndbuf, 0);
      return fd;
    }
    const peer = u.peer === undefined ? undefined : this.byId.get(u.peer)?.unix;
    if (u.peer !== undefined && !peer) throw new CrError("restore", `files.cbor: unix socket ${f.id}'s peer ${u.peer} is not a unix socket`);
    const [mine, theirs] = native.makeSocketPair(type, this.minFd);
    this.opened.push(mine, theirs);
    // What each end had to read, sent by the other: sent before any shutdown, which would refuse it.
    native.fillSocket(theirs, u.queue);
    if (peer) native.fillSocket(mine, peer.queue);
    native.finishSocket(mine, u.sndbuf, u.shutdown);
    if (peer && u.peer !== undefined) {
      native.finishSocket(theirs, peer.sndbuf, peer.shutdown);
      this.ends.set(u.peer, theirs);
    } else {
      this.opened.splice(this.opened.indexOf(theirs), 1);
      native.closeFd(theirs);
    }
    return mine;
  }
}

const EADDRINUSE = 98;

/** The listening TCP socket of file `f` (kind "inet"), at a number >= minFd, non-blocking until the caller sets its flags. */
export function openInetListener(f: FileRecord, minFd: number): number {
  const n = f.inet;
  if (!n) throw new CrError("restore", `files.cbor: inet socket ${f.id} without its record`);
  let bits = 0;
  for (const [name, bit] of Object.entries(INET_OPT)) if (n.options[name as keyof typeof INET_OPT]) bits |= bit;
  try {
    return native.makeTcpListener(n.family === "ipv4" ? 2 : 10, n.address, n.port, n.backlog, bits, minFd);
  } catch (e) {
    const where = inetEndpoint(n.address, n.port);
    if (e instanceof CrError && e.errno === EADDRINUSE) {
      // Without SO_REUSEADDR, the dumped socket's own connections closed in the last minute (TIME_WAIT) hold the port too.
      const why = n.options.reuseaddr ? "another socket listens there" : "another socket listens there, or, as the socket had no SO_REUSEADDR, connections it closed lately are still in TIME_WAIT";
      throw new CrError("restore", `address in use: ${where} (${why})`, { errno: EADDRINUSE, cause: e });
    }
    throw new CrError("restore", `cannot listen on ${where} again: ${(e as Error).message}`, { cause: e, ...(e instanceof CrError && e.errno !== undefined ? { errno: e.errno } : {}) });
  }
}

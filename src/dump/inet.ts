// IPv4 and IPv6 sockets of the frozen tree. Supported: a TCP socket
// listening with no connection waiting to be accepted (a server between
// clients), as CRIU does without --tcp-established: sock_diag (libcr's
// inetdiag.zig) tells its state, bound address and port, backlog and accept
// queue; getsockopt on a copy of the fd (taken with pidfd_getfd) the options
// a restore sets again. Anything else (established or closing connections,
// UDP, raw ...) stops the dump with the fd, the socket and the pid named.
import type { InetSocketImage } from "../images/index.ts";
import * as native from "../native/index.ts";
import { INET_OPT } from "../native/abi.ts";
import { inetEndpoint } from "../show/names.ts";

export const AF_INET = 2, AF_INET6 = 10;
const SOCK_STREAM = 1, IPPROTO_TCP = 6;
const TCP_ESTABLISHED = 1, TCP_CLOSE = 7, TCP_LISTEN = 10;
const TCP_STATES = ["", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING"];

/** Whether a socket of these options is one describeInet may take (a TCP socket; the rest is refused by kind). */
export function isTcp(o: native.SockOpts): boolean {
  return (o.domain === AF_INET || o.domain === AF_INET6) && o.type === SOCK_STREAM && o.protocol === IPPROTO_TCP;
}

/**
 * The record of TCP socket `ino` (its copy in cr: `copy`), or throws
 * `unsupported(why)` saying what it is and why it is not taken.
 */
export function describeInet(pid: number, ino: number, copy: number, o: native.SockOpts, unsupported: (why: string) => Error): InetSocketImage {
  const v = o.domain === AF_INET ? "IPv4" : "IPv6";
  const d = native.inetDiag(o.domain, ino, pid);
  if (!d) throw unsupported(`a TCP socket (${v}) that sock_diag does not show (in another network namespace?)`);
  const local = inetEndpoint(d.src, d.sport);
  if (d.state === TCP_ESTABLISHED) {
    throw unsupported(`an established TCP connection (${v}) ${local} -> ${inetEndpoint(d.dst, d.dport)}: established TCP needs --tcp-established, not supported yet`);
  }
  if (d.state === TCP_CLOSE) throw unsupported(`a TCP socket (${v}) neither listening nor connected: not supported yet`);
  if (d.state !== TCP_LISTEN) throw unsupported(`a TCP socket (${v}) ${local} in state ${TCP_STATES[d.state] ?? d.state}: not supported yet`);
  if (d.rqueue > 0) throw unsupported(`a listening TCP socket (${v}) on ${local} with ${d.rqueue} connection(s) waiting to be accepted`);
  if (d.ifindex !== 0) throw unsupported(`a listening TCP socket (${v}) on ${local} bound to network interface ${d.ifindex}: not supported yet`);
  const bits = native.inetOpts(copy, o.domain, pid);
  const has = (b: number) => (bits & b) !== 0;
  return {
    family: o.domain === AF_INET ? "ipv4" : "ipv6", type: "stream", state: "listening",
    address: d.src, port: d.sport, backlog: d.wqueue,
    options: {
      reuseaddr: has(INET_OPT.reuseaddr), reuseport: has(INET_OPT.reuseport), v6only: has(INET_OPT.v6only),
      nodelay: has(INET_OPT.nodelay), keepalive: has(INET_OPT.keepalive),
    },
  };
}

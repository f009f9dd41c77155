// The pure parts of socket support: how a refused socket is named, how a
// unix socket name, an IP address and a socket record are shown.
import { expect, test } from "bun:test";
import { socketKind } from "../../src/dump/sockets.ts";
import { fileDetail } from "../../src/show/format.ts";
import { inetEndpoint, ipAddress, unixName } from "../../src/show/names.ts";
import type { FilesImage } from "../../src/images/index.ts";

test("a refused socket is named by its family, type and protocol", () => {
  expect(socketKind({ domain: 2, type: 1, protocol: 6, sndbuf: 0 })).toBe("a TCP socket (IPv4)");
  expect(socketKind({ domain: 10, type: 2, protocol: 17, sndbuf: 0 })).toBe("a UDP socket (IPv6)");
  expect(socketKind({ domain: 2, type: 3, protocol: 1, sndbuf: 0 })).toBe("a raw IPv4 socket");
  expect(socketKind({ domain: 16, type: 3, protocol: 0, sndbuf: 0 })).toBe("a netlink socket (protocol 0)");
  expect(socketKind({ domain: 17, type: 3, protocol: 0, sndbuf: 0 })).toBe("a packet socket");
  expect(socketKind({ domain: 40, type: 1, protocol: 0, sndbuf: 0 })).toBe("a socket of address family 40");
});

test("unix socket names: a path as it is, an abstract name after @ (its 0 bytes as @)", () => {
  expect(unixName(new TextEncoder().encode("/run/x.sock"))).toBe("/run/x.sock");
  expect(unixName(new Uint8Array([0, 0x61, 0, 0x62]))).toBe("@a@b");
});

type File = FilesImage["files"][number];
const sock = (unix: NonNullable<File["unix"]>): File => ({ id: 1, kind: "unix", path: "socket:[1]", flags: 2, pos: 0, unix });

test("cr show says a socket's type, state, peer and queue", () => {
  const q = [new Uint8Array(3), new Uint8Array(0)];
  expect(fileDetail(sock({ type: "dgram", state: "connected", peer: 2, shutdown: 0, sndbuf: 0, queue: q }), undefined))
    .toBe("dgram, peer 2, 2 messages (3 B) queued");
  expect(fileDetail(sock({ type: "stream", state: "connected", shutdown: 3, sndbuf: 0, queue: q }), undefined))
    .toBe("stream, peer closed, 3 B queued, shut down");
  expect(fileDetail(sock({ type: "seqpacket", state: "listening", name: new Uint8Array([0, 0x78]), backlog: 4, shutdown: 0, sndbuf: 0, queue: [] }), undefined))
    .toBe("seqpacket, listening on @x, backlog 4");
});

test("IP addresses as ss shows them: dotted IPv4, IPv6 with its longest run of zero groups as ::", () => {
  const v6 = (...g: number[]) => new Uint8Array(g.flatMap((x) => [x >> 8, x & 0xff]));
  expect(inetEndpoint(new Uint8Array([127, 0, 0, 1]), 8000)).toBe("127.0.0.1:8000");
  expect(inetEndpoint(new Uint8Array(4), 80)).toBe("0.0.0.0:80");
  expect(inetEndpoint(new Uint8Array(16), 443)).toBe("[::]:443");
  expect(ipAddress(v6(0, 0, 0, 0, 0, 0, 0, 1))).toBe("::1");
  expect(ipAddress(v6(0xfe80, 0, 0, 0, 0x1, 0x2, 0x3, 0x4))).toBe("fe80::1:2:3:4");
  // The longest run wins; the first of two as long; a single 0 group stays.
  expect(ipAddress(v6(0x2001, 0xdb8, 0, 0, 1, 0, 0, 0))).toBe("2001:db8:0:0:1::");
  expect(ipAddress(v6(0x2001, 0, 0, 1, 0, 0, 2, 3))).toBe("2001::1:0:0:2:3");
  expect(ipAddress(v6(1, 0, 2, 3, 4, 5, 6, 7))).toBe("1:0:2:3:4:5:6:7");
});

test("cr show says where a TCP listener listens, its backlog and its options", () => {
  const f: File = {
    id: 1, kind: "inet", path: "socket:[1]", flags: 2, pos: 0,
    inet: {
      family: "ipv6", type: "stream", state: "listening", address: new Uint8Array([...new Uint8Array(15), 1]), port: 8080, backlog: 11,
      options: { reuseaddr: false, reuseport: true, v6only: true, nodelay: false, keepalive: false },
    },
  };
  expect(fileDetail(f, undefined)).toBe("tcp ipv6, listening on [::1]:8080, backlog 11, reuseport,v6only");
});

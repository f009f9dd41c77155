// files.cbor records of the kinds with state of their own (named FIFOs,
// eventfd, timerfd, signalfd, epoll, inotify, unix sockets, TCP listeners): a valid set decodes as written, and each
// record that type-checks but makes no sense is refused with its reason.
import { describe, expect, test } from "bun:test";
import { CrError } from "../../src/errors.ts";
import { decodeImage, encodeImage, type FilesImage } from "../../src/images/index.ts";

function valid(): FilesImage {
  return {
    files: [
      { id: 1, kind: "fifo", path: "/tmp/f", flags: 0, pos: 0, fifoId: 1 },
      { id: 2, kind: "eventfd", path: "anon_inode:[eventfd]", flags: 2, pos: 0, eventfd: { count: (1n << 64n) - 2n, semaphore: true } },
      {
        id: 3, kind: "timerfd", path: "anon_inode:[timerfd]", flags: 2, pos: 0,
        timerfd: { clockid: 7, ticks: 3n, settimeFlags: 1, valueNs: 5_000_000_000n, intervalNs: 10_000_000n },
      },
      { id: 4, kind: "signalfd", path: "anon_inode:[signalfd]", flags: 2, pos: 0, signalfd: { sigmask: 1n << 63n } },
      {
        id: 5, kind: "epoll", path: "anon_inode:[eventpoll]", flags: 2, pos: 0,
        epoll: [{ tfd: 2, events: 0x80000019, data: (1n << 64n) - 1n, fileId: 2 }, { tfd: 3, events: 1, data: 0n, fileId: 3 }],
      },
      {
        id: 6, kind: "inotify", path: "anon_inode:inotify", flags: 0o4000, pos: 0,
        inotify: { watches: [{ wd: 1, mask: 0x84000002, path: "/tmp/a" }, { wd: 3, mask: 0x100, path: "/tmp" }] },
      },
      {
        id: 7, kind: "unix", path: "socket:[10]", flags: 2, pos: 0,
        unix: { type: "seqpacket", state: "connected", peer: 8, shutdown: 1, sndbuf: 212992, queue: [new Uint8Array([1]), new Uint8Array(0)] },
      },
      { id: 8, kind: "unix", path: "socket:[11]", flags: 2, pos: 0, unix: { type: "seqpacket", state: "connected", peer: 7, shutdown: 2, sndbuf: 0, queue: [] } },
      {
        id: 9, kind: "unix", path: "socket:[12]", flags: 2, pos: 0,
        unix: { type: "stream", state: "listening", name: new TextEncoder().encode("/tmp/s"), backlog: 5, shutdown: 0, sndbuf: 4096, queue: [] },
      },
      { id: 10, kind: "unix", path: "socket:[13]", flags: 2, pos: 0, unix: { type: "dgram", state: "connected", shutdown: 0, sndbuf: 4096, queue: [new Uint8Array(3)] } },
      { id: 11, kind: "unix", path: "socket:[14]", flags: 2, pos: 0, unix: { type: "stream", state: "unbound", shutdown: 0, sndbuf: 4096, queue: [] } },
      {
        id: 12, kind: "inet", path: "socket:[15]", flags: 2, pos: 0,
        inet: {
          family: "ipv4", type: "stream", state: "listening", address: new Uint8Array([127, 0, 0, 1]), port: 8000, backlog: 128,
          options: { reuseaddr: true, reuseport: true, v6only: false, nodelay: false, keepalive: false },
        },
      },
      {
        id: 13, kind: "inet", path: "socket:[16]", flags: 0o4002, pos: 0,
        inet: {
          family: "ipv6", type: "stream", state: "listening", address: new Uint8Array(16), port: 8000, backlog: 4096,
          options: { reuseaddr: false, reuseport: false, v6only: true, nodelay: true, keepalive: true },
        },
      },
    ],
    pipes: [],
    fifos: [{ id: 1, size: 65536, data: new Uint8Array([1, 2, 3]) }],
    shmem: [],
  };
}

const decode = (f: FilesImage) => decodeImage("files", encodeImage("files", f), "files.cbor");

function refused(edit: (f: FilesImage) => void, reason: string): void {
  const f = valid();
  edit(f);
  let err: unknown;
  try {
    decode(f);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CrError);
  expect((err as CrError).message).toContain(reason);
}

type File = FilesImage["files"][number];
const at = (f: FilesImage, id: number): File => f.files.find((x) => x.id === id)!;

test("a valid set of every kind decodes as written", () => {
  expect(decode(valid())).toEqual(valid());
});

describe("records that make no sense are refused", () => {
  test("a FIFO without its buffer, or a buffer larger than its pipe", () => {
    refused((f) => delete at(f, 1).fifoId, "fifo without a record in fifos");
    refused((f) => (at(f, 1).fifoId = 9), "fifo without a record in fifos");
    refused((f) => (f.fifos![0]!.size = 2), "3 bytes buffered in a pipe of 2");
    refused((f) => f.fifos!.push({ id: 1, size: 1, data: new Uint8Array(0) }), "fifos: id 1 appears twice");
  });
  test("an eventfd without its counter, or past its maximum", () => {
    refused((f) => delete at(f, 2).eventfd, "eventfd without its counter");
    refused((f) => (at(f, 2).eventfd!.count = (1n << 64n) - 1n), "out of range");
    refused((f) => (at(f, 2).eventfd!.count = -1n), "out of range");
  });
  test("a timerfd without its timer, on a clock timerfd has not, or with times out of range", () => {
    refused((f) => delete at(f, 3).timerfd, "timerfd without its timer");
    refused((f) => (at(f, 3).timerfd!.clockid = 2), "timerfd clock 2");
    refused((f) => (at(f, 3).timerfd!.settimeFlags = 4), "settime flags 4");
    refused((f) => (at(f, 3).timerfd!.valueNs = -1n), "out of range");
    refused((f) => (at(f, 3).timerfd!.intervalNs = 1n << 63n), "out of range");
  });
  test("a signalfd without a 64-bit mask", () => {
    refused((f) => delete at(f, 4).signalfd, "signalfd without");
    refused((f) => (at(f, 4).signalfd!.sigmask = 1n << 64n), "signalfd without");
  });
  test("an epoll registration of a missing file, of itself, twice, or out of range", () => {
    refused((f) => delete at(f, 5).epoll, "epoll without its registrations");
    refused((f) => (at(f, 5).epoll![0]!.fileId = 42), "registered file 42");
    refused((f) => (at(f, 5).epoll![0]!.fileId = 5), "registered file 5");
    refused((f) => at(f, 5).epoll!.push({ ...at(f, 5).epoll![0]! }), "fd 2 on file 2 registered twice");
    refused((f) => (at(f, 5).epoll![0]!.events = 2 ** 32), "out of range");
    refused((f) => (at(f, 5).epoll![0]!.data = 1n << 64n), "out of range");
    refused((f) => (at(f, 5).epoll![0]!.tfd = 1 << 20), "out of range");
  });
  test("inotify watches missing, out of wd order, with a wd or mask out of range, or on a relative path", () => {
    refused((f) => delete at(f, 6).inotify, "inotify without its watches");
    refused((f) => at(f, 6).inotify!.watches.reverse(), "wd 1 out of range or out of order");
    refused((f) => (at(f, 6).inotify!.watches[1]!.wd = 1), "wd 1 out of range or out of order");
    refused((f) => (at(f, 6).inotify!.watches[0]!.wd = 0), "wd 0 out of range");
    refused((f) => (at(f, 6).inotify!.watches[1]!.wd = 2 ** 31), "out of range");
    refused((f) => (at(f, 6).inotify!.watches[0]!.mask = 2 ** 32), "wider than 32 bits");
    refused((f) => (at(f, 6).inotify!.watches[0]!.path = "tmp/a"), "is not absolute");
  });
  test("a TCP listener without its record, with an address not of its family, a port or backlog out of range, or on another's port", () => {
    refused((f) => delete at(f, 12).inet, "inet socket without its record");
    refused((f) => (at(f, 12).inet!.address = new Uint8Array(16)), "ipv4 address of 16 bytes");
    refused((f) => (at(f, 13).inet!.address = new Uint8Array(4)), "ipv6 address of 4 bytes");
    refused((f) => (at(f, 12).inet!.port = 0), "TCP port 0 out of range");
    refused((f) => (at(f, 12).inet!.port = 65536), "TCP port 65536 out of range");
    refused((f) => (at(f, 12).inet!.backlog = 2 ** 31), "listen backlog 2147483648 out of range");
    refused((f) => (at(f, 12).inet!.options.v6only = true), "IPV6_V6ONLY on an ipv4 socket");
    // A second listener on 127.0.0.1:8000: only SO_REUSEPORT on both lets two sockets share a port.
    const twin = (reuseport: boolean) => (f: FilesImage) => {
      const t = structuredClone(at(f, 12));
      t.id = 14;
      t.inet!.options.reuseport = reuseport;
      f.files.push(t);
    };
    refused(twin(false), "inet sockets 12 and 14 listen on the same address and port without SO_REUSEPORT");
    const ok = valid();
    twin(true)(ok);
    expect(decode(ok).files.length).toBe(14);
  });

  test("a unix socket without its record, with a peer that is not its peer, or a listener without its name", () => {
    refused((f) => delete at(f, 7).unix, "unix socket without its record");
    refused((f) => (at(f, 7).unix!.peer = 5), "peer 5 is not another unix socket");
    refused((f) => (at(f, 7).unix!.peer = 7), "peer 7 is not another unix socket");
    refused((f) => (at(f, 8).unix!.type = "stream"), "is not a seqpacket socket connected back to it");
    refused((f) => (at(f, 8).unix!.peer = 9), "peer 8 is not a seqpacket socket connected back to it");
    refused((f) => (at(f, 7).unix!.shutdown = 4), "shutdown state 4 out of range");
    refused((f) => (at(f, 9).unix!.type = "dgram"), "a listening dgram socket");
    refused((f) => delete at(f, 9).unix!.backlog, "without its name or backlog");
    refused((f) => (at(f, 9).unix!.name = new TextEncoder().encode("rel/s")), "neither abstract nor an absolute path");
    refused((f) => (at(f, 9).unix!.name = new Uint8Array(109)), "name of 109 bytes");
    refused((f) => at(f, 9).unix!.queue.push(new Uint8Array(1)), "unix socket (listening) with a peer or a queue");
    refused((f) => (at(f, 11).unix!.name = new Uint8Array([0, 1])), "unix socket (unbound) with a name or a backlog");
  });
});

// /proc/PID/fdinfo parsers, on fixtures captured from a 6.18 kernel (and a
// few edited to what older kernels or odd states print).
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  parseEpollTargets, parseEventfd, parseFdinfo, parseInotifyWatches, parseSignalfd, parseTimerfd,
} from "../../src/proc/fdinfo.ts";
import { mountOf, parseMountinfo } from "../../src/proc/mountinfo.ts";

const fixture = (name: string) => readFileSync(join(import.meta.dir, "../fixtures/proc", `fdinfo-${name}`), "utf8");
const info = (name: string) => parseFdinfo(fixture(name));

describe("common lines", () => {
  test("pos, flags (octal), mnt_id, ino", () => {
    const i = info("regular");
    expect([i.pos, i.flags, i.mntId, i.ino]).toEqual([5, 0o2100001, 27, 10060026]);
    expect(info("fifo").flags).toBe(0o104000);
  });
  test("no pos/flags is refused", () => {
    expect(() => parseFdinfo("mnt_id: 3\n")).toThrow("without pos/flags");
  });
});

describe("eventfd", () => {
  test("count is hex, the semaphore flag is read", () => {
    expect(parseEventfd(info("eventfd"))).toEqual({ count: 5n, semaphore: false });
    expect(parseEventfd(info("eventfd-semaphore"))).toEqual({ count: 5n, semaphore: true });
  });
  test("older kernels: no semaphore line; the largest count 2^64-2", () => {
    expect(parseEventfd(info("eventfd-old"))).toEqual({ count: (1n << 64n) - 2n, semaphore: undefined });
  });
  test("bad lines are refused", () => {
    expect(() => parseEventfd(parseFdinfo("pos: 0\nflags: 02\n"))).toThrow("eventfd-count missing");
    expect(() => parseEventfd(parseFdinfo("pos: 0\nflags: 02\neventfd-count: xyz\n"))).toThrow("not a number");
    expect(() => parseEventfd(parseFdinfo("pos: 0\nflags: 02\neventfd-count: ffffffffffffffff\n"))).toThrow("maximum");
    expect(() => parseEventfd(parseFdinfo("pos: 0\nflags: 02\neventfd-count: 1\neventfd-semaphore: 2\n"))).toThrow("semaphore");
  });
});

describe("timerfd", () => {
  test("an armed periodic timer: remaining time and interval in ns", () => {
    expect(parseTimerfd(info("timerfd"))).toEqual({
      clockid: 1, ticks: 0n, settimeFlags: 0, valueNs: 89_261_900_535n, intervalNs: 2_500_000_000n,
    });
  });
  test("an expired periodic timer not read yet: value 0, ticks pending", () => {
    const t = parseTimerfd(info("timerfd-expired"));
    expect([t.valueNs, t.ticks, t.intervalNs]).toEqual([0n, 1n, 2_500_000_000n]);
  });
  test("settime flags are octal", () => {
    const text = fixture("timerfd").replace("settime flags: 00", "settime flags: 03");
    expect(parseTimerfd(parseFdinfo(text)).settimeFlags).toBe(3);
  });
  test("bad lines are refused", () => {
    const t = fixture("timerfd");
    expect(() => parseTimerfd(parseFdinfo(t.replace("it_value: (89, 261900535)", "it_value: 89")))).toThrow("it_value");
    expect(() => parseTimerfd(parseFdinfo(t.replace("it_interval: (2, 500000000)", "it_interval: (2, 1000000000)")))).toThrow("nanoseconds");
    expect(() => parseTimerfd(parseFdinfo(t.replace("clockid: 1\n", "")))).toThrow("clockid missing");
  });
});

describe("signalfd", () => {
  test("the mask is hex, bit N-1 = signal N", () => {
    // 0xa00: signals 10 (SIGUSR1) and 12 (SIGUSR2).
    expect(parseSignalfd(info("signalfd"))).toBe((1n << 9n) | (1n << 11n));
  });
  test("no mask is refused", () => {
    expect(() => parseSignalfd(parseFdinfo("pos: 0\nflags: 02\n"))).toThrow("sigmask missing");
  });
});

describe("epoll", () => {
  test("one target per tfd line, in the kernel's order", () => {
    expect(parseEpollTargets(fixture("epoll"))).toEqual([
      { tfd: 4, events: 0x19, data: 4n, ino: 0x40e, sdev: 0x10 },
      { tfd: 5, events: 0x8000001d, data: 5n, ino: 0x4f9f, sdev: 0xf },
      { tfd: 7, events: 0x19, data: 0x7fb400000007n, ino: 0x40e, sdev: 0x10 },
    ]);
  });
  test("a fired EPOLLONESHOT keeps only its private bits; 64-bit data", () => {
    expect(parseEpollTargets(fixture("epoll-oneshot"))).toEqual([
      { tfd: 4, events: 0x40000000, data: 7n, ino: 0x40e, sdev: 0x10 },
      { tfd: 3, events: 0x80000019, data: 0x1234567890abcdefn, ino: 0x40e, sdev: 0x10 },
    ]);
  });
  test("no registration: empty; a mangled line is refused", () => {
    expect(parseEpollTargets(fixture("eventfd"))).toEqual([]);
    expect(() => parseEpollTargets(`${fixture("epoll")}tfd: 9 events: zz\n`)).toThrow("does not parse");
  });
});

describe("inotify", () => {
  const handle = (hex: string) => ({ type: 1, bytes: Uint8Array.from(hex.match(/../g)!, (b) => parseInt(b, 16)) });
  test("one watch: wd, mask, inode, device (kernel encoding) and file handle, all hex", () => {
    expect(parseInotifyWatches(fixture("inotify"))).toEqual([
      { wd: 1, mask: 0x300, ignoredMask: 0, ino: 0x3c4a3, sdev: 0xfe00000, handle: handle("a3c4030000000000") },
    ]);
  });
  test("many watches, newest first in fdinfo, come sorted by wd; wds above 9 are hex; IN_ONESHOT|IN_EXCL_UNLINK kept", () => {
    const w = parseInotifyWatches(fixture("inotify-watches"));
    expect(w.map((x) => x.wd)).toEqual([1, 3, 10, 11, 12, 13]);
    expect(w.find((x) => x.wd === 3)!.mask).toBe(0x84000002);
    expect(w.find((x) => x.wd === 13)).toEqual({ wd: 13, mask: 0x100, ignoredMask: 0, ino: 0x9a640d, sdev: 0xfe00000, handle: handle("0d649a00e06485cf") });
  });
  test("a watch on a filesystem that gives no file handle: no handle", () => {
    expect(parseInotifyWatches(fixture("inotify-nohandle"))).toEqual([
      { wd: 2, mask: 0xfff, ignoredMask: 0, ino: 1, sdev: 0x16, handle: undefined },
    ]);
  });
  test("no watch: empty; mangled or out-of-range lines are refused", () => {
    expect(parseInotifyWatches(fixture("eventfd"))).toEqual([]);
    const base = "pos: 0\nflags: 00\n";
    expect(() => parseInotifyWatches(`${base}inotify wd:zz ino:1 sdev:1 mask:2 ignored_mask:0\n`)).toThrow("does not parse");
    expect(() => parseInotifyWatches(`${base}inotify wd:0 ino:1 sdev:1 mask:2 ignored_mask:0\n`)).toThrow("out of range");
    expect(() => parseInotifyWatches(`${base}inotify wd:1 ino:1 sdev:1 mask:100000000 ignored_mask:0\n`)).toThrow("out of range");
    expect(() => parseInotifyWatches(
      `${base}inotify wd:1 ino:1 sdev:1 mask:2 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:abcd\n`,
    )).toThrow("not fhandle-bytes long");
  });
});

describe("mountinfo", () => {
  const mounts = parseMountinfo(readFileSync(join(import.meta.dir, "../fixtures/proc/unshare.mountinfo"), "utf8"));
  test("device, root and mount point of each line", () => {
    expect(mounts[0]).toEqual({ major: 254, minor: 0, root: "/", mountPoint: "/" });
    expect(mounts.find((m) => m.mountPoint === "/proc")).toEqual({ major: 0, minor: 21, root: "/", mountPoint: "/proc" });
  });
  test("escaped paths; the mount of a whole filesystem is preferred to a bind mount of a part", () => {
    const text = "50 43 8:1 /data/sub /mnt/bind\\040it rw - ext4 /dev/sda1 rw\n51 43 8:1 / /mnt/all rw - ext4 /dev/sda1 rw\n";
    const m = parseMountinfo(text);
    expect(m[0]!.mountPoint).toBe("/mnt/bind it");
    expect(mountOf(m, 8, 1)!.mountPoint).toBe("/mnt/all");
    expect(mountOf(m.slice(0, 1), 8, 1)!.root).toBe("/data/sub");
    expect(mountOf(m, 8, 2)).toBeUndefined();
    expect(() => parseMountinfo("garbage\n")).toThrow("does not parse");
  });
});

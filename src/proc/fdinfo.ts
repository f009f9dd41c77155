// /proc/PID/fdinfo/FD: the common lines (pos, flags, mnt_id, ino) and the
// lines each kind of anonymous-inode file adds (eventfd, timerfd, signalfd,
// epoll, inotify). Pure: text in, typed values out; a line that is missing or does
// not parse throws, naming it.

export interface FdInfo {
  pos: number;
  flags: number;
  mntId: number | undefined;
  ino: number | undefined;
  fields: Record<string, string>;
}

export function parseFdinfo(text: string): FdInfo {
  const fields: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) fields[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  if (fields.pos === undefined || fields.flags === undefined) throw new Error("fdinfo without pos/flags");
  return {
    pos: Number(fields.pos),
    flags: parseInt(fields.flags, 8),
    mntId: fields.mnt_id === undefined ? undefined : Number(fields.mnt_id),
    ino: fields.ino === undefined ? undefined : Number(fields.ino),
    fields,
  };
}

/** The value of `key` as an unsigned integer in `radix` (16 and 8 may be 64-bit). */
function field(info: FdInfo, key: string, radix: 8 | 10 | 16): bigint {
  const v = info.fields[key];
  const digits = radix === 16 ? /^[0-9a-f]+$/i : radix === 8 ? /^[0-7]+$/ : /^\d+$/;
  if (v === undefined || !digits.test(v)) throw new Error(`fdinfo: ${key} ${v === undefined ? "missing" : `"${v}" is not a number`}`);
  return radix === 10 ? BigInt(v) : BigInt((radix === 16 ? "0x" : "0o") + v);
}

const U64_MAX = (1n << 64n) - 1n;

export interface EventfdInfo {
  count: bigint;
  /** EFD_SEMAPHORE; undefined on kernels that do not show it (before 6.8). */
  semaphore: boolean | undefined;
}

/** eventfd: `eventfd-count: %16llx`, `eventfd-semaphore: %d` (newer kernels). */
export function parseEventfd(info: FdInfo): EventfdInfo {
  const count = field(info, "eventfd-count", 16);
  if (count >= U64_MAX) throw new Error(`fdinfo: eventfd-count ${count} is above the counter's maximum`);
  const sem = info.fields["eventfd-semaphore"];
  if (sem !== undefined && sem !== "0" && sem !== "1") throw new Error(`fdinfo: eventfd-semaphore "${sem}"`);
  return { count, semaphore: sem === undefined ? undefined : sem === "1" };
}

export interface TimerfdInfo {
  clockid: number;
  /** Expirations not read yet. */
  ticks: bigint;
  /** TFD_TIMER_ABSTIME 1, TFD_TIMER_CANCEL_ON_SET 2, as given to timerfd_settime. */
  settimeFlags: number;
  /** Time left until the next expiration (0: disarmed, or expired and not re-armed yet). */
  valueNs: bigint;
  intervalNs: bigint;
}

/** `(seconds, nanoseconds)` as nanoseconds. */
function timespec(info: FdInfo, key: string): bigint {
  const m = /^\((\d+), (\d+)\)$/.exec(info.fields[key] ?? "");
  if (!m) throw new Error(`fdinfo: ${key} ${info.fields[key] === undefined ? "missing" : `"${info.fields[key]}" is not (sec, nsec)`}`);
  const nsec = BigInt(m[2]!);
  if (nsec >= 1_000_000_000n) throw new Error(`fdinfo: ${key} has ${nsec} nanoseconds`);
  return BigInt(m[1]!) * 1_000_000_000n + nsec;
}

/** timerfd: clockid, ticks, `settime flags` (octal), it_value and it_interval (remaining, relative). */
export function parseTimerfd(info: FdInfo): TimerfdInfo {
  const clockid = field(info, "clockid", 10);
  if (clockid > 64n) throw new Error(`fdinfo: clockid ${clockid}`);
  return {
    clockid: Number(clockid),
    ticks: field(info, "ticks", 10),
    settimeFlags: Number(field(info, "settime flags", 8) & 0xffffn),
    valueNs: timespec(info, "it_value"),
    intervalNs: timespec(info, "it_interval"),
  };
}

/** signalfd: the signals it accepts (`sigmask:` in hex, bit N-1 = signal N). */
export function parseSignalfd(info: FdInfo): bigint {
  const mask = field(info, "sigmask", 16);
  if (mask > U64_MAX) throw new Error(`fdinfo: sigmask ${mask.toString(16)} is wider than 64 signals`);
  return mask;
}

export interface EpollTarget {
  /** The fd number the file was registered under, in the registering process. */
  tfd: number;
  events: number;
  data: bigint;
  /** Inode and device (st_dev, kernel encoding) of the registered file. */
  ino: number;
  sdev: number;
}

const TFD_LINE = /^tfd:\s+(\d+)\s+events:\s+([0-9a-f]+)\s+data:\s+([0-9a-f]+)\s+pos:\s*(-?\d+)\s+ino:\s*([0-9a-f]+)\s+sdev:\s*([0-9a-f]+)\s*$/i;

/** epoll: one `tfd: N events: X data: Y pos: P ino: I sdev: D` line per registration, in the kernel's order. */
export function parseEpollTargets(text: string): EpollTarget[] {
  const out: EpollTarget[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("tfd:")) continue;
    const m = TFD_LINE.exec(line);
    if (!m) throw new Error(`fdinfo: epoll line "${line}" does not parse`);
    const events = parseInt(m[2]!, 16);
    const data = BigInt(`0x${m[3]}`);
    if (events > 0xffffffff || data > U64_MAX) throw new Error(`fdinfo: epoll line "${line}" is out of range`);
    out.push({ tfd: Number(m[1]), events, data, ino: parseInt(m[5]!, 16), sdev: parseInt(m[6]!, 16) });
  }
  return out;
}

export interface InotifyWatch {
  wd: number;
  /** IN_* events and flags (IN_ONESHOT, IN_EXCL_UNLINK ...) as the kernel holds them. */
  mask: number;
  ignoredMask: number;
  /** Inode and device (st_dev, kernel encoding) of the watched object. */
  ino: number;
  sdev: number;
  /** Its file handle, to open it by; absent when its filesystem cannot encode one. */
  handle: { type: number; bytes: Uint8Array } | undefined;
}

const INOTIFY_LINE = /^inotify wd:([0-9a-f]+) ino:([0-9a-f]+) sdev:([0-9a-f]+) mask:([0-9a-f]+) ignored_mask:([0-9a-f]+)(?: fhandle-bytes:([0-9a-f]+) fhandle-type:([0-9a-f]+) f_handle:([0-9a-f]*))?\s*$/i;

/**
 * inotify: one `inotify wd:W ino:I sdev:D mask:M ignored_mask:0 fhandle-bytes:N
 * fhandle-type:T f_handle:H` line per watch, every number in hex (the kernel
 * lists the newest wd first); sorted here by wd.
 */
export function parseInotifyWatches(text: string): InotifyWatch[] {
  const out: InotifyWatch[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("inotify ")) continue;
    const m = INOTIFY_LINE.exec(line);
    if (!m) throw new Error(`fdinfo: inotify line "${line}" does not parse`);
    const [wd, ino, sdev, mask, ignoredMask] = [1, 2, 3, 4, 5].map((i) => parseInt(m[i]!, 16)) as [number, number, number, number, number];
    if (wd < 1 || wd > 0x7fffffff || mask > 0xffffffff || ignoredMask > 0xffffffff) throw new Error(`fdinfo: inotify line "${line}" is out of range`);
    let handle: InotifyWatch["handle"];
    if (m[6] !== undefined) {
      const len = parseInt(m[6], 16);
      const hex = m[8]!;
      if (hex.length !== len * 2 || len === 0) throw new Error(`fdinfo: inotify line "${line}": f_handle is not fhandle-bytes long`);
      handle = { type: parseInt(m[7]!, 16), bytes: Uint8Array.from(hex.match(/../g)!, (b) => parseInt(b, 16)) };
    }
    out.push({ wd, mask, ignoredMask, ino, sdev, handle });
  }
  return out.sort((a, b) => a.wd - b.wd);
}

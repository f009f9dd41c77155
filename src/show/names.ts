// Names for the numbers in images: protections, open flags, signals,
// sigaction flags, sizes, registers.
import { USER_REGS_FIELDS, USER_REGS_SIZE } from "../native/abi.ts";

export const hex = (n: number | bigint) => `0x${n.toString(16)}`;

export function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = bytes / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}

export const prot = (p: number) => `${p & 1 ? "r" : "-"}${p & 2 ? "w" : "-"}${p & 4 ? "x" : "-"}`;

const OPEN_FLAGS: [number, string][] = [
  [0o100, "O_CREAT"], [0o200, "O_EXCL"], [0o400, "O_NOCTTY"], [0o1000, "O_TRUNC"], [0o2000, "O_APPEND"],
  [0o4000, "O_NONBLOCK"], [0o10000, "O_DSYNC"], [0o20000, "O_ASYNC"], [0o40000, "O_DIRECT"], [0o100000, "O_LARGEFILE"],
  [0o200000, "O_DIRECTORY"], [0o400000, "O_NOFOLLOW"], [0o1000000, "O_NOATIME"], [0o2000000, "O_CLOEXEC"],
  [0o4000000, "O_SYNC"], [0o10000000, "O_PATH"], [0o20000000, "O_TMPFILE"],
];

function flagNames(value: number | bigint, table: [number, string][], first: string[]): string {
  const names = [...first];
  let rest = BigInt(value);
  for (const [bit, name] of table) {
    if ((rest & BigInt(bit)) !== 0n) {
      names.push(name);
      rest &= ~BigInt(bit);
    }
  }
  if (rest !== 0n) names.push(hex(rest));
  return names.join("|");
}

export function openFlags(flags: number): string {
  const acc = ["O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"][flags & 3]!;
  return flagNames(flags - (flags & 3), OPEN_FLAGS, [acc]);
}

const SA_FLAGS: [number, string][] = [
  [0x1, "SA_NOCLDSTOP"], [0x2, "SA_NOCLDWAIT"], [0x4, "SA_SIGINFO"], [0x04000000, "SA_RESTORER"],
  [0x08000000, "SA_ONSTACK"], [0x10000000, "SA_RESTART"], [0x40000000, "SA_NODEFER"], [0x80000000, "SA_RESETHAND"],
];

export const saFlags = (flags: number) => (flags === 0 ? "0" : flagNames(flags, SA_FLAGS, []));

const SIGNALS = [
  "", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV",
  "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN",
  "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
];

export const signal = (sig: number) => SIGNALS[sig] || (sig >= 32 && sig <= 64 ? `SIGRTMIN+${sig - 32}` : `signal ${sig}`);

/** A signal mask as the names of its signals ("-" when empty). */
export function sigset(mask: bigint): string {
  const names: string[] = [];
  for (let sig = 1; sig <= 64; sig++) if ((mask >> BigInt(sig - 1)) & 1n) names.push(signal(sig));
  return names.length ? names.join(",") : "-";
}

export const handler = (h: number) => (h === 0 ? "SIG_DFL" : h === 1 ? "SIG_IGN" : hex(h));

/** struct user_regs_struct as named 64-bit values (undefined if it has the wrong size). */
export function registers(regs: Uint8Array): [string, bigint][] | undefined {
  if (regs.length !== USER_REGS_SIZE) return undefined;
  const dv = new DataView(regs.buffer, regs.byteOffset, regs.byteLength);
  return USER_REGS_FIELDS.map((name, i) => [name, dv.getBigUint64(i * 8, true)]);
}

const CLOCKS: Record<number, string> = {
  0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 7: "CLOCK_BOOTTIME", 8: "CLOCK_REALTIME_ALARM", 9: "CLOCK_BOOTTIME_ALARM",
};
export const clock = (id: number) => CLOCKS[id] ?? `clock ${id}`;

/** Nanoseconds as seconds, to the microsecond. */
export const seconds = (ns: bigint) => `${(Number(ns / 1000n) / 1e6).toString()} s`;

const EPOLL_EVENTS: [number, string][] = [
  [0x1, "IN"], [0x2, "PRI"], [0x4, "OUT"], [0x8, "ERR"], [0x10, "HUP"], [0x40, "RDNORM"], [0x80, "RDBAND"],
  [0x100, "WRNORM"], [0x200, "WRBAND"], [0x400, "MSG"], [0x2000, "RDHUP"], [0x10000000, "EXCLUSIVE"],
  [0x20000000, "WAKEUP"], [0x40000000, "ONESHOT"], [0x80000000, "ET"],
];
export const epollEvents = (events: number) => (events === 0 ? "0" : flagNames(events, EPOLL_EVENTS, []));

const INOTIFY_MASK: [number, string][] = [
  [0x1, "ACCESS"], [0x2, "MODIFY"], [0x4, "ATTRIB"], [0x8, "CLOSE_WRITE"], [0x10, "CLOSE_NOWRITE"], [0x20, "OPEN"],
  [0x40, "MOVED_FROM"], [0x80, "MOVED_TO"], [0x100, "CREATE"], [0x200, "DELETE"], [0x400, "DELETE_SELF"],
  [0x800, "MOVE_SELF"], [0x1000000, "ONLYDIR"], [0x2000000, "DONT_FOLLOW"], [0x4000000, "EXCL_UNLINK"],
  [0x10000000, "MASK_CREATE"], [0x20000000, "MASK_ADD"], [0x80000000, "ONESHOT"],
];
/** An inotify watch's mask as IN_* names without the prefix (MODIFY|CREATE ...). */
export const inotifyMask = (mask: number) => (mask === 0 ? "0" : flagNames(mask, INOTIFY_MASK, []));
/** A unix socket name: its path, or "@name" for an abstract one (its 0 bytes as "@", as ss shows it). */
export function unixName(name: Uint8Array): string {
  const abstract = name[0] === 0;
  const text = new TextDecoder().decode(abstract ? name.subarray(1) : name);
  return abstract ? `@${text.replace(/\0/g, "@")}` : text;
}

/** An IPv4 (4 bytes) or IPv6 (16 bytes) address as text: dotted, or RFC 5952 (its longest run of zero groups as "::"). */
export function ipAddress(a: Uint8Array): string {
  if (a.length === 4) return a.join(".");
  const groups = Array.from({ length: a.length >> 1 }, (_, i) => (a[2 * i]! << 8) | a[2 * i + 1]!);
  let best = { at: -1, len: 1 };
  for (let i = 0; i < groups.length; i++) {
    let j = i;
    while (j < groups.length && groups[j] === 0) j++;
    if (j - i > best.len) best = { at: i, len: j - i };
    i = Math.max(i, j);
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(":");
  if (best.at < 0) return hex(groups);
  return `${hex(groups.slice(0, best.at))}::${hex(groups.slice(best.at + best.len))}`;
}

/** An address and port as ss shows them: 127.0.0.1:8000, [::1]:8000. */
export function inetEndpoint(address: Uint8Array, port: number): string {
  return address.length === 4 ? `${ipAddress(address)}:${port}` : `[${ipAddress(address)}]:${port}`;
}

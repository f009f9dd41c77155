// /proc/PID/status.

export type IdQuad = [real: number, effective: number, saved: number, fs: number];

export interface ProcStatus {
  name: string;
  /** Absent for zombies and kernels before 4.7. */
  umask: number | undefined;
  state: string;
  tgid: number;
  ngid: number;
  pid: number;
  ppid: number;
  tracerPid: number;
  uid: IdQuad;
  gid: IdQuad;
  groups: number[];
  nstgid: number[];
  nspid: number[];
  nspgid: number[];
  nssid: number[];
  threads: number;
  sigQ: { queued: number; limit: number };
  sigPnd: bigint;
  shdPnd: bigint;
  sigBlk: bigint;
  sigIgn: bigint;
  sigCgt: bigint;
  capInh: bigint;
  capPrm: bigint;
  capEff: bigint;
  capBnd: bigint;
  capAmb: bigint;
  noNewPrivs: number;
  seccomp: number;
  /** Every "Key:\tvalue" line, value trimmed. */
  raw: Record<string, string>;
}

/** Capability numbers cr asks about (linux/capability.h). */
export const CAP_SYS_PTRACE = 19n;
export const CAP_SYS_ADMIN = 21n;
export const CAP_CHECKPOINT_RESTORE = 40n;

/** Whether capability set `mask` (CapEff and the like) holds `cap`. */
export function hasCap(mask: bigint, cap: bigint): boolean {
  return ((mask >> cap) & 1n) === 1n;
}

export function parseStatus(text: string): ProcStatus {
  const raw: Record<string, string> = {};
  let name: string | undefined;
  for (const line of text.split("\n")) {
    if (line.length === 0) continue;
    const i = line.indexOf(":");
    if (i <= 0) throw new Error(`malformed status line: ${JSON.stringify(line)}`);
    const key = line.slice(0, i);
    raw[key] = line.slice(i + 1).trim();
    // The name may begin or end with spaces: keep everything after the one tab.
    if (key === "Name") name = line.slice(i + 1).replace(/^\t/, "");
  }
  const get = (k: string): string => {
    const v = raw[k];
    if (v === undefined) throw new Error(`status has no ${k}`);
    return v;
  };
  const int = (k: string, s: string | undefined = get(k)): number => {
    if (s === undefined || !/^\d+$/.test(s)) throw new Error(`status ${k}: not a number: ${JSON.stringify(s)}`);
    return Number(s);
  };
  const opt = (k: string): number => (raw[k] === undefined ? 0 : int(k));
  const list = (k: string): number[] => (raw[k] ?? "").split(/\s+/).filter(Boolean).map((s) => int(k, s));
  const quad = (k: string): IdQuad => {
    const [r, e, s, f, ...more] = list(k);
    if (r === undefined || e === undefined || s === undefined || f === undefined || more.length > 0) {
      throw new Error(`status ${k}: expected 4 ids, got ${JSON.stringify(raw[k])}`);
    }
    return [r, e, s, f];
  };
  const hex = (k: string): bigint => {
    const v = get(k);
    if (!/^[0-9a-f]+$/i.test(v)) throw new Error(`status ${k}: not hex: ${JSON.stringify(v)}`);
    return BigInt("0x" + v);
  };
  const umask = raw.Umask;
  if (umask !== undefined && !/^[0-7]+$/.test(umask)) throw new Error(`status Umask: not octal: ${JSON.stringify(umask)}`);
  const [queued, limit, ...extra] = get("SigQ").split("/");
  if (extra.length > 0) throw new Error(`status SigQ: ${JSON.stringify(raw.SigQ)}`);
  return {
    name: name ?? get("Name"),
    umask: umask === undefined ? undefined : parseInt(umask, 8),
    state: get("State").charAt(0),
    tgid: int("Tgid"),
    ngid: opt("Ngid"),
    pid: int("Pid"),
    ppid: int("PPid"),
    tracerPid: int("TracerPid"),
    uid: quad("Uid"),
    gid: quad("Gid"),
    groups: list("Groups"),
    nstgid: list("NStgid"),
    nspid: list("NSpid"),
    nspgid: list("NSpgid"),
    nssid: list("NSsid"),
    threads: int("Threads"),
    sigQ: { queued: int("SigQ", queued), limit: int("SigQ", limit) },
    sigPnd: hex("SigPnd"), shdPnd: hex("ShdPnd"), sigBlk: hex("SigBlk"), sigIgn: hex("SigIgn"), sigCgt: hex("SigCgt"),
    capInh: hex("CapInh"), capPrm: hex("CapPrm"), capEff: hex("CapEff"), capBnd: hex("CapBnd"), capAmb: hex("CapAmb"),
    noNewPrivs: opt("NoNewPrivs"),
    seccomp: opt("Seccomp"),
    raw,
  };
}

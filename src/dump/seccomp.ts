// Seccomp filters of a frozen task: read with ptrace per thread, each
// distinct kernel filter stored once, every thread's chain as indexes (see
// docs/images.md). Strict mode and filters that hand syscalls to a user-space
// supervisor (SECCOMP_RET_USER_NOTIF) are refused: cr cannot bring back
// either (strict mode forbids the restorer's syscalls; the supervisor's
// listener fd lives in another process).
import { readFileSync } from "node:fs";
import { CrError } from "../errors.ts";
import * as native from "../native/index.ts";
import { parseStatus } from "../proc/status.ts";
import type { TaskImage } from "../images/index.ts";

const SECCOMP_MODE_STRICT = 1, SECCOMP_MODE_FILTER = 2;
const BPF_RET_K = 0x06;
const SECCOMP_RET_ACTION_FULL = 0xffff0000, SECCOMP_RET_USER_NOTIF = 0x7fc00000;

export interface TaskSeccomp {
  filters: NonNullable<TaskImage["seccompFilters"]>;
  /** Per thread (in `tids` order): its chain, oldest filter first; empty when it has none. */
  chains: number[][];
}

/** Does the classic BPF program `insns` return SECCOMP_RET_USER_NOTIF anywhere (as a constant)? */
export function returnsUserNotif(insns: Uint8Array): boolean {
  const dv = new DataView(insns.buffer, insns.byteOffset, insns.byteLength);
  for (let o = 0; o + 8 <= insns.length; o += 8) {
    const code = dv.getUint16(o, true), k = dv.getUint32(o + 4, true);
    if (code === BPF_RET_K && ((k & SECCOMP_RET_ACTION_FULL) >>> 0) === SECCOMP_RET_USER_NOTIF) return true;
  }
  return false;
}

/**
 * Each thread's chain (given oldest first, as ptrace reads it) as indexes
 * into one list of filters. Two threads share a filter when it is the same
 * program with the same flags on the same parent: what filters inherited
 * over clone or synced with SECCOMP_FILTER_FLAG_TSYNC look like.
 */
export function dedupChains(raw: native.SeccompFilterRaw[][]): TaskSeccomp {
  const filters: TaskSeccomp["filters"] = [];
  const byKey = new Map<string, number>();
  const chains = raw.map((oldestFirst) => {
    const chain: number[] = [];
    let parent = -1;
    for (const f of oldestFirst) {
      const key = `${parent} ${f.flags} ${Buffer.from(f.insns).toString("hex")}`;
      let index = byKey.get(key);
      if (index === undefined) {
        index = filters.length;
        filters.push({ insns: f.insns, flags: f.flags });
        byKey.set(key, index);
      }
      chain.push(index);
      parent = index;
    }
    return chain;
  });
  return { filters, chains };
}

/**
 * The seccomp state of frozen task `pid` (threads `tids`, all seized, the
 * main thread first, whose seccomp mode the caller has read already as
 * `mainMode`), or undefined when no thread is under seccomp. Filters stop
 * applying to what cr injects from here on (the parasite's syscalls).
 */
export function collectSeccomp(pid: number, tids: number[], mainMode: number): TaskSeccomp | undefined {
  const modes = tids.map((tid, i) => (i === 0 ? mainMode : parseStatus(readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8")).seccomp));
  const strict = tids.find((_, i) => modes[i] === SECCOMP_MODE_STRICT);
  if (strict !== undefined) {
    throw new CrError("dump", `unsupported: thread ${strict} is in seccomp strict mode (it could not run the restorer)`, { pid });
  }
  if (!modes.includes(SECCOMP_MODE_FILTER)) return undefined;
  for (const tid of tids) native.suspendSeccomp(tid);
  const raw = tids.map((tid, i) => (modes[i] === SECCOMP_MODE_FILTER ? native.readSeccompChain(tid) : []));
  raw.forEach((chain, i) => {
    if (chain.some((f) => returnsUserNotif(f.insns))) {
      throw new CrError("dump", `unsupported: thread ${tids[i]} has a seccomp filter with user notification (its supervisor cannot be restored)`, { pid });
    }
  });
  return dedupChains(raw);
}

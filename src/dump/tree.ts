// Which tasks a dump covers, and freezing them: the given process and every
// descendant, parents before children. Each task is frozen (all its threads
// seized) before its children are listed, so a frozen parent cannot fork
// behind our back; zombies are recorded, not frozen (they have nothing left
// to dump but their exit status). A task's threads are seized until no new
// one shows up: a frozen thread cannot start another.
import { existsSync } from "node:fs";
import { CrError } from "../errors.ts";
import { listTids, readProcText } from "../proc/read.ts";
import { parseChildren } from "../proc/children.ts";
import { parseStat, type ProcStat } from "../proc/stat.ts";
import { MAX_THREADS } from "../native/abi.ts";

export interface DumpTask {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  tids: number[];
  /** "stopped": in a job-control stop when frozen (cr lifted it to dump; it is stopped again when let go or restored). */
  state: "alive" | "zombie" | "stopped";
  /** A zombie's wait status. */
  exitStatus?: number;
}

export const MAX_TASKS = 4096;
const MAX_THREAD_ROUNDS = 64;

function statOf(pid: number): ProcStat {
  try {
    return parseStat(readProcText(pid, "stat"));
  } catch (e) {
    throw new CrError("dump", "process vanished while the tree was being frozen", { pid, errno: 3, cause: e });
  }
}

function tryStat(pid: number): ProcStat | null {
  try {
    return parseStat(readProcText(pid, "stat"));
  } catch {
    return null;
  }
}

function childrenOf(pid: number, tids: number[]): number[] {
  try {
    return tids.flatMap((t) => parseChildren(readProcText(pid, `task/${t}/children`)));
  } catch (e) {
    throw new CrError("dump", "process vanished while its children were listed", { pid, errno: 3, cause: e });
  }
}

function threadGone(pid: number, tid: number): boolean {
  return !existsSync(`/proc/${pid}/task/${tid}`);
}

/**
 * Seize every thread of `pid`, listing them again until a listing shows no
 * thread that is not frozen yet (the running ones may have started more).
 * A thread that exits before it is seized is left out. Returns the frozen
 * thread ids, the main thread first.
 */
function freezeThreads(pid: number, seize: (tid: number) => boolean): { tids: number[]; stopped: boolean } {
  const frozen = new Set<number>();
  let stopped = false;
  for (let round = 0; round < MAX_THREAD_ROUNDS; round++) {
    const now = listTids(pid);
    // The main thread first: when it cannot be frozen, the task is ending.
    const fresh = now.filter((t) => !frozen.has(t)).sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
    if (fresh.length === 0) {
      if (!frozen.has(pid)) throw new CrError("dump", "process vanished while its threads were being frozen", { pid, errno: 3 });
      return { tids: [pid, ...now.filter((t) => t !== pid)], stopped };
    }
    if (frozen.size + fresh.length > MAX_THREADS) throw new CrError("dump", `unsupported: more than ${MAX_THREADS} threads`, { pid });
    for (const tid of fresh) {
      try {
        if (seize(tid)) stopped = true;
      } catch (e) {
        if (tid !== pid && threadGone(pid, tid)) continue;
        throw e;
      }
      frozen.add(tid);
    }
  }
  throw new CrError("dump", `threads kept appearing after ${MAX_THREAD_ROUNDS} rounds of freezing`, { pid });
}

export interface Freezer {
  /** Freeze one thread; true when it was in a job-control stop. */
  seize(tid: number): boolean;
  /** Lift the job-control stop of task `pid`, whose threads `tids` are all frozen, so they can run injected code. */
  wake(pid: number, tids: number[]): void;
  /** Let go of every thread frozen so far (after a failure). */
  release(tids: number[]): void;
}

/**
 * Freeze the tree rooted at `rootPid` (one thread at a time), returning its
 * tasks in tree order (root first, then depth first). On any failure every
 * thread seized so far is handed to `release` and the error is rethrown: the
 * tree runs on as it was.
 */
export function freezeTree(rootPid: number, freezer: Freezer): DumpTask[] {
  if (!Number.isInteger(rootPid) || rootPid <= 0) throw new CrError("dump", `invalid pid ${rootPid}`);
  if (rootPid === process.pid) throw new CrError("dump", "cannot dump cr itself", { pid: rootPid });
  if (!existsSync(`/proc/${rootPid}/stat`)) throw new CrError("dump", "no such process", { pid: rootPid, errno: 3 });
  if (statOf(rootPid).state === "Z") throw new CrError("dump", "process is a zombie", { pid: rootPid });

  const tasks: DumpTask[] = [];
  const seized: number[] = [];
  const visit = (pid: number): void => {
    if (tasks.length >= MAX_TASKS) throw new CrError("dump", `unsupported: more than ${MAX_TASKS} tasks in the tree`, { pid: rootPid });
    if (pid === process.pid) throw new CrError("dump", "cannot dump a tree that contains cr itself", { pid });
    const zombie = (st: ProcStat): void => {
      // A main thread that exited while other threads run shows as Z too.
      if (listTids(pid).length > 1) throw new CrError("dump", "unsupported: the main thread exited while other threads run", { pid });
      tasks.push({ pid, ppid: st.ppid, pgid: st.pgrp, sid: st.session, tids: [pid], state: "zombie", exitStatus: st.exitCode });
    };
    // A child listed a moment ago may be gone already (its parent ignores SIGCHLD).
    const before = pid === rootPid ? statOf(pid) : tryStat(pid);
    if (before === null) return;
    if (before.state === "Z") return zombie(before);
    let frozen: { tids: number[]; stopped: boolean };
    try {
      frozen = freezeThreads(pid, (tid) => {
        const stopped = freezer.seize(tid);
        seized.push(tid);
        return stopped;
      });
    } catch (e) {
      // A child that exited between being listed and being frozen: its
      // parent is frozen, so it stays a zombie (or, if its parent ignores
      // SIGCHLD, it is gone). Either way the tree is consistent without it.
      if (pid === rootPid || !(e instanceof CrError) || seized.includes(pid)) throw e;
      const after = tryStat(pid);
      if (after === null) return;
      if (after.state === "Z") return zombie(after);
      throw e;
    }
    const { tids } = frozen;
    if (frozen.stopped) freezer.wake(pid, tids);
    // Session and group as they are now that nothing can change them.
    const st = statOf(pid);
    tasks.push({ pid, ppid: st.ppid, pgid: st.pgrp, sid: st.session, tids, state: frozen.stopped ? "stopped" : "alive" });
    for (const child of childrenOf(pid, tids)) visit(child);
  };
  try {
    visit(rootPid);
  } catch (e) {
    freezer.release(seized);
    throw e;
  }
  return tasks;
}

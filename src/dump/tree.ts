// Which tasks a dump covers, and freezing them: the given process and every
// descendant, parents before children. Each task is frozen (all its threads
// seized) before its children are listed, so a frozen parent cannot fork
// behind our back; zombies are recorded, not frozen (they have nothing left
// to dump but their exit status). Threads come with their own work: a
// multi-threaded task is refused before anything is touched in it.
import { existsSync } from "node:fs";
import { CrError } from "../errors.ts";
import { listTids, readProcText } from "../proc/read.ts";
import { parseChildren } from "../proc/children.ts";
import { parseStat, type ProcStat } from "../proc/stat.ts";

export interface DumpTask {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  tids: number[];
  state: "alive" | "zombie";
  /** A zombie's wait status. */
  exitStatus?: number;
}

export const MAX_TASKS = 4096;

function statOf(pid: number): ProcStat {
  try {
    return parseStat(readProcText(pid, "stat"));
  } catch (e) {
    throw new CrError("dump", "process vanished while the tree was being frozen", { pid, errno: 3, cause: e });
  }
}

function childrenOf(pid: number, tids: number[]): number[] {
  try {
    return tids.flatMap((t) => parseChildren(readProcText(pid, `task/${t}/children`)));
  } catch (e) {
    throw new CrError("dump", "process vanished while its children were listed", { pid, errno: 3, cause: e });
  }
}

function sameList(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Freeze the tree rooted at `rootPid` with `seize` (one thread at a time),
 * returning its tasks in tree order (root first, then depth first). On any
 * failure every thread seized so far is handed to `release` and the error is
 * rethrown: the tree runs on as it was.
 */
export function freezeTree(rootPid: number, seize: (tid: number) => void, release: (tids: number[]) => void): DumpTask[] {
  if (!Number.isInteger(rootPid) || rootPid <= 0) throw new CrError("dump", `invalid pid ${rootPid}`);
  if (rootPid === process.pid) throw new CrError("dump", "cannot dump cr itself", { pid: rootPid });
  if (!existsSync(`/proc/${rootPid}/stat`)) throw new CrError("dump", "no such process", { pid: rootPid, errno: 3 });
  if (statOf(rootPid).state === "Z") throw new CrError("dump", "process is a zombie", { pid: rootPid });

  const tasks: DumpTask[] = [];
  const seized: number[] = [];
  const visit = (pid: number): void => {
    if (tasks.length >= MAX_TASKS) throw new CrError("dump", `unsupported: more than ${MAX_TASKS} tasks in the tree`, { pid: rootPid });
    if (pid === process.pid) throw new CrError("dump", "cannot dump a tree that contains cr itself", { pid });
    const before = statOf(pid);
    if (before.state === "Z") {
      tasks.push({ pid, ppid: before.ppid, pgid: before.pgrp, sid: before.session, tids: [pid], state: "zombie", exitStatus: before.exitCode });
      return;
    }
    const tids = listTids(pid);
    if (tids.length > 1) {
      throw new CrError("dump", `unsupported: ${tids.length} threads (multi-threaded processes are not supported yet)`, { pid });
    }
    for (const tid of tids) {
      seize(tid);
      seized.push(tid);
    }
    if (!sameList(listTids(pid), tids)) throw new CrError("dump", "threads appeared while the task was being frozen; try again", { pid });
    // Session and group as they are now that nothing can change them.
    const st = statOf(pid);
    tasks.push({ pid, ppid: st.ppid, pgid: st.pgrp, sid: st.session, tids, state: "alive" });
    for (const child of childrenOf(pid, tids)) visit(child);
  };
  try {
    visit(rootPid);
  } catch (e) {
    release(seized);
    throw e;
  }
  return tasks;
}

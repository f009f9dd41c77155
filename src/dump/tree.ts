// Which tasks a dump covers. This milestone dumps one single-threaded process;
// a child or a second thread is refused with a clear error before anything
// is touched (process trees and threads come with their own issue).
import { existsSync, readFileSync } from "node:fs";
import { CrError } from "../errors.ts";
import { listTids } from "../proc/read.ts";
import { parseChildren } from "../proc/children.ts";
import { parseStat } from "../proc/stat.ts";

export interface DumpTarget {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  tids: number[];
}

export function collectTarget(pid: number): DumpTarget {
  if (!Number.isInteger(pid) || pid <= 0) throw new CrError("dump", `invalid pid ${pid}`);
  if (pid === process.pid) throw new CrError("dump", "cannot dump cr itself", { pid });
  if (!existsSync(`/proc/${pid}/stat`)) throw new CrError("dump", `no such process`, { pid, errno: 3 });
  let stat;
  try {
    stat = parseStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch (e) {
    throw new CrError("dump", "process vanished", { pid, errno: 3, cause: e });
  }
  if (stat.state === "Z") throw new CrError("dump", "process is a zombie", { pid });
  const tids = listTids(pid);
  if (tids.length > 1) {
    throw new CrError("dump", `unsupported: ${tids.length} threads (multi-threaded processes are not supported yet)`, { pid });
  }
  const children = tids.flatMap((t) => parseChildren(readFileSync(`/proc/${pid}/task/${t}/children`, "utf8")));
  if (children.length > 0) {
    throw new CrError("dump", `unsupported: has child processes ${children.join(", ")} (process trees are not supported yet)`, { pid });
  }
  return { pid, ppid: stat.ppid, pgid: stat.pgrp, sid: stat.session, tids };
}

// Namespaces are not dumped yet: every task must share each of its
// namespaces with cr, or restore would bring it back into cr's own (another
// network, other mounts, other pid numbers, another host name ...), a
// different world for the program. Refused at dump, naming task and namespace.
import { readlinkSync } from "node:fs";
import { CrError } from "../errors.ts";

const KINDS: Record<string, string> = {
  pid: "PID", net: "network", mnt: "mount", ipc: "IPC", uts: "UTS (host name)", user: "user", cgroup: "cgroup", time: "time",
};

/** "net:[4026531840]", or undefined where the kernel has no such namespace (or the task is gone or a zombie). */
function namespaceOf(who: string, kind: string): string | undefined {
  try {
    return readlinkSync(`/proc/${who}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

/** Fails the dump at the first task of `pids` in a namespace cr is not in. */
export function checkSameNamespaces(pids: number[]): void {
  for (const [kind, name] of Object.entries(KINDS)) {
    const mine = namespaceOf("self", kind);
    if (mine === undefined) continue;
    for (const pid of pids) {
      const theirs = namespaceOf(String(pid), kind);
      if (theirs !== undefined && theirs !== mine) {
        throw new CrError("dump", `unsupported: pid ${pid} is in its own ${name} namespace (${theirs}; cr is in ${mine}): namespaces are not supported yet`, { pid });
      }
    }
  }
}

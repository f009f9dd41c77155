// Where libcr may write an injected `syscall; int3` in a task: the start of an
// executable mapping that is neither the vDSO nor vsyscall. Used by the dump
// (parasite) and by restore (removing the restorer's area).
import { CrError } from "./errors.ts";

const PROT_EXEC = 4;

export function syscallSite(vmas: readonly { start: number; prot: number; kind: string }[], pid: number): number {
  const v = vmas.find((x) => (x.prot & PROT_EXEC) !== 0 && x.kind !== "vdso" && x.kind !== "vsyscall");
  if (!v) throw new CrError("inject", "no executable mapping to run injected code from", { pid });
  return v.start;
}

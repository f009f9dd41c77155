// Where libcr runs code in a task (lib/inject.zig): a `syscall; ret` and an
// rt_sigreturn sequence of the task's own code, found by libcr in its
// executable file mappings (the dynamic loader first: it is small and has
// both; then libc, then the rest), and its main stack. No code of the task
// is ever written. Used by the dump (parasite) and by restore (removing the
// restorer's area).
import { CrError } from "./errors.ts";
import * as native from "./native/index.ts";
import { InjectSite } from "./native/abi.ts";

const PROT_EXEC = 4;

interface Vma {
  start: number;
  end: number;
  prot: number;
  kind: string;
  path?: string | undefined;
}

/** The executable file mappings of `vmas`, in the order libcr should search them. */
export function gadgetSearchOrder(vmas: readonly Vma[]): { addr: number; len: number }[] {
  const rank = (v: Vma) => (/\/ld-[^/]*\.so/.test(v.path ?? "") ? 0 : /\/libc[.-][^/]*so/.test(v.path ?? "") ? 1 : 2);
  return vmas
    .filter((v) => (v.prot & PROT_EXEC) !== 0 && v.kind === "file")
    .sort((a, b) => rank(a) - rank(b) || a.start - b.start)
    .map((v) => ({ addr: v.start, len: v.end - v.start }));
}

/** The abi.InjectSite of task `pid` whose mappings are `vmas`. */
export function injectSite(vmas: readonly Vma[], pid: number): Uint8Array {
  const ranges = gadgetSearchOrder(vmas);
  if (ranges.length === 0) throw new CrError("inject", "no executable file mapping to run injected code through", { pid });
  const site = native.findGadgets(pid, ranges);
  const stack = vmas.find((v) => v.kind === "stack");
  const dv = new DataView(site.buffer, site.byteOffset, site.byteLength);
  dv.setBigUint64(InjectSite.stack_start, BigInt(stack?.start ?? 0), true);
  dv.setBigUint64(InjectSite.stack_end, BigInt(stack?.end ?? 0), true);
  return site;
}

// Semantic checks of one record, beyond its types: sizes of raw kernel
// structs, ranges, order and uniqueness. decodeImage applies them, so every
// reader (restore included) sees only records that make sense on their own.
// Checks across files (pagemap vs pages file, fds vs files.cbor) are in
// imageset.ts. Each returns a problem or null.
import { NSIG, SIGINFO_SIZE, USER_REGS_SIZE, XSTATE_MAX } from "../native/abi.ts";
import { HASH_ALG } from "./schema.ts";
import type { ImageBody, ImageKind, TaskImage, TreeImage, FilesImage, ManifestImage, InventoryImage, PagemapImage } from "./schema.ts";

/** Legacy FXSAVE area + XSAVE header: the smallest XSAVE image. */
const XSTATE_MIN = 576;
/** Highest user address + 1 on x86_64 with 4-level paging (TASK_SIZE). */
export const USER_END = 0x7ffffffff000;
const MAX_FD = 1 << 20; // fs.nr_open's ceiling
const PAGE = 4096;

type Check<T> = (body: T) => string | null;

function firstDuplicate(values: number[]): number | undefined {
  const seen = new Set<number>();
  for (const v of values) {
    if (seen.has(v)) return v;
    seen.add(v);
  }
  return undefined;
}

const inventory: Check<InventoryImage> = (b) => {
  if (b.pageSize < PAGE || b.pageSize > 1 << 30 || (b.pageSize & (b.pageSize - 1)) !== 0) return `pageSize ${b.pageSize} is not a page size`;
  if (b.rootPid === 0) return "rootPid is 0";
  return null;
};

const tree: Check<TreeImage> = (b) => {
  if (b.tasks.length === 0) return "tasks: empty tree";
  const dup = firstDuplicate(b.tasks.map((t) => t.pid));
  if (dup !== undefined) return `tasks: pid ${dup} appears twice`;
  for (const [i, t] of b.tasks.entries()) {
    if (t.pid === 0) return `tasks[${i}]: pid 0`;
    if (!t.threads.includes(t.pid)) return `tasks[${i}]: threads do not include the pid ${t.pid}`;
    const d = firstDuplicate(t.threads);
    if (d !== undefined) return `tasks[${i}]: thread ${d} appears twice`;
  }
  return null;
};

function checkVmas(vmas: TaskImage["mm"]["vmas"]): string | null {
  let prevEnd = 0;
  for (const [i, v] of vmas.entries()) {
    const at = `mm.vmas[${i}]`;
    if (v.start % PAGE !== 0 || v.end % PAGE !== 0 || v.offset % PAGE !== 0) return `${at}: not page aligned`;
    if (v.start >= v.end) return `${at}: empty or inverted (0x${v.start.toString(16)}-0x${v.end.toString(16)})`;
    if (v.end > USER_END) return `${at}: ends above the user address space`;
    if (v.start < prevEnd) return `${at}: overlaps or out of order`;
    if (v.prot > 7) return `${at}: prot ${v.prot} is not a combination of read/write/exec`;
    if (v.kind === "file" && !v.path) return `${at}: file mapping without a path`;
    prevEnd = v.end;
  }
  return null;
}

function checkThreads(b: TaskImage): string | null {
  if (b.threads.length === 0) return "threads: none";
  if (!b.threads.some((t) => t.tid === b.pid)) return `threads: none has the task's pid ${b.pid}`;
  const dup = firstDuplicate(b.threads.map((t) => t.tid));
  if (dup !== undefined) return `threads: tid ${dup} appears twice`;
  for (const [i, t] of b.threads.entries()) {
    const at = `threads[${i}]`;
    if (t.regs.length !== USER_REGS_SIZE) return `${at}.regs: ${t.regs.length} bytes, expected ${USER_REGS_SIZE}`;
    if (t.xstate.length < XSTATE_MIN || t.xstate.length > XSTATE_MAX) {
      return `${at}.xstate: ${t.xstate.length} bytes is not an XSAVE area`;
    }
    const p = t.pending.findIndex((s) => s.length !== SIGINFO_SIZE);
    if (p >= 0) return `${at}.pending[${p}]: not a ${SIGINFO_SIZE}-byte siginfo`;
  }
  return null;
}

const task: Check<TaskImage> = (b) => {
  if (b.pid === 0) return "pid 0";
  if (b.umask > 0o777) return `umask ${b.umask.toString(8)} out of range`;
  for (const [i, s] of b.sigactions.entries()) {
    if (s.sig < 1 || s.sig > NSIG) return `sigactions[${i}]: signal ${s.sig} out of range 1..${NSIG}`;
  }
  const dupSig = firstDuplicate(b.sigactions.map((s) => s.sig));
  if (dupSig !== undefined) return `sigactions: signal ${dupSig} appears twice`;
  const dupRes = firstDuplicate(b.rlimits.map((r) => r.resource));
  if (dupRes !== undefined) return `rlimits: resource ${dupRes} appears twice`;
  const sp = b.sharedPending.findIndex((s) => s.length !== SIGINFO_SIZE);
  if (sp >= 0) return `sharedPending[${sp}]: not a ${SIGINFO_SIZE}-byte siginfo`;
  for (const [i, f] of b.fds.entries()) if (f.fd >= MAX_FD) return `fds[${i}]: fd ${f.fd} out of range`;
  const dupFd = firstDuplicate(b.fds.map((f) => f.fd));
  if (dupFd !== undefined) return `fds: fd ${dupFd} appears twice`;
  if (b.mm.auxv.length % 16 !== 0) return `mm.auxv: ${b.mm.auxv.length} bytes is not a list of (type, value) pairs`;
  return checkThreads(b) ?? checkVmas(b.mm.vmas);
};

const pagemap: Check<PagemapImage> = (b) => {
  for (const [i, e] of b.entries.entries()) {
    if (e.pages === 0) return `entries[${i}]: empty run`;
    if (e.pages > USER_END / PAGE || e.start + e.pages * PAGE > USER_END) return `entries[${i}]: ends above the user address space`;
  }
  return null;
};

const files: Check<FilesImage> = (b) => {
  const dup = firstDuplicate(b.files.map((f) => f.id));
  if (dup !== undefined) return `files: id ${dup} appears twice`;
  const empty = b.files.findIndex((f) => f.path === "");
  if (empty >= 0) return `files[${empty}]: empty path`;
  return null;
};

const manifest: Check<ManifestImage> = (b) => {
  if (b.hashAlg !== HASH_ALG) return `hashAlg: unknown hash algorithm ${JSON.stringify(b.hashAlg)} (this cr checks ${HASH_ALG})`;
  const seen = new Set<string>();
  for (const [i, f] of b.files.entries()) {
    if (f.name === "" || f.name.includes("/") || f.name.startsWith(".") || f.name.includes("\0")) {
      return `files[${i}]: bad file name ${JSON.stringify(f.name)}`;
    }
    if (seen.has(f.name)) return `files[${i}]: ${f.name} listed twice`;
    seen.add(f.name);
    if (!/^[0-9a-f]{32}$/.test(f.hash)) return `files[${i}]: ${f.name}: hash is not an ${HASH_ALG} digest`;
  }
  return null;
};

const CHECKS: { [K in ImageKind]: Check<ImageBody<K>> } = { inventory, tree, task, pagemap, files, manifest };

export function checkRecord<K extends ImageKind>(kind: K, body: ImageBody<K>): string | null {
  return (CHECKS[kind] as Check<ImageBody<K>>)(body);
}

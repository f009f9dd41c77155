// The address space of a frozen task: which VMAs to re-create, which pages to
// save. Pages are saved only where they hold something the VMA's backing does
// not: present or swapped anonymous pages (for file mappings: the private
// copies), as libcr finds them (PAGEMAP_SCAN, or /proc/PID/pagemap).
import { CrError } from "../errors.ts";
import * as native from "../native/index.ts";
import type { MapsEntry, SmapsEntry } from "../proc/maps.ts";

export const PAGE = 4096;
const PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;
const MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_ANONYMOUS = 0x20, MAP_GROWSDOWN = 0x100;

export type VmaKind = "anon" | "file" | "heap" | "stack" | "vdso" | "vvar" | "vvar_vclock" | "vsyscall" | "shmem";

export interface DumpVma {
  start: number;
  end: number;
  prot: number;
  flags: number;
  offset: number;
  kind: VmaKind;
  path?: string;
  growsDown: boolean;
  dumped: boolean;
  /** kind "shmem": the shared memory object (its inode at dump time). */
  shmemId?: number;
  /** Its memory protection key (pkey_mprotect), when not the default 0. */
  pkey?: number;
  /** kind "file" of a deleted file: its ghost (see mapGhosts in ghost.ts). */
  ghostId?: number;
}

export interface PageRun {
  addr: number;
  len: number;
}

const SPECIAL: Record<string, VmaKind> = { "[vdso]": "vdso", "[vvar]": "vvar", "[vvar_vclock]": "vvar_vclock", "[vsyscall]": "vsyscall" };

export function classifyVma(m: MapsEntry, vmFlags: string[] | undefined, pid: number): DumpVma {
  const prot = (m.read ? PROT_READ : 0) | (m.write ? PROT_WRITE : 0) | (m.exec ? PROT_EXEC : 0);
  const growsDown = vmFlags?.includes("gd") ?? m.path === "[stack]";
  const base = { start: m.start, end: m.end, prot, offset: m.offset, growsDown };
  const special = SPECIAL[m.path];
  if (special) return { ...base, flags: MAP_PRIVATE, kind: special, dumped: false };
  const what = `mapping 0x${m.start.toString(16)}-0x${m.end.toString(16)} ${m.path || "(anonymous)"}`;
  if (m.shared && m.path.startsWith("/SYSV")) {
    throw new CrError("dump", `unsupported: SysV shared memory ${what} (not supported yet)`, { pid });
  }
  if (m.shared && m.inode === 0) {
    throw new CrError("dump", `unsupported: shared anonymous ${what} (shared memory is not supported yet)`, { pid });
  }
  if (m.shared && m.deleted && (m.path === "/dev/zero" || m.path.startsWith("/memfd:"))) {
    // Anonymous shared memory or a memfd: one object for every task that
    // maps it, its content dumped once (see ShmemTable), not per task.
    return { ...base, flags: MAP_SHARED, kind: "shmem", path: m.path, shmemId: m.inode, dumped: false };
  }
  if (m.inode === 0) {
    const kind: VmaKind = m.path === "[heap]" ? "heap" : m.path === "[stack]" ? "stack" : "anon";
    return { ...base, flags: MAP_PRIVATE | MAP_ANONYMOUS | (growsDown ? MAP_GROWSDOWN : 0), kind, dumped: true };
  }
  if (!m.path.startsWith("/")) throw new CrError("dump", `unsupported: ${what} (this kind of mapping is not supported yet)`, { pid });
  if (m.deleted && m.path.startsWith("/memfd:")) {
    throw new CrError("dump", `unsupported: ${what} (deleted) (private memfd mappings are not supported yet)`, { pid });
  }
  // A deleted file (m.deleted) is mapped like any other: its content is a
  // ghost file, which mapGhosts (ghost.ts) saves and links to the VMA.
  if (m.shared) {
    // The content lives in the file; only the mapping is re-created.
    return { ...base, flags: MAP_SHARED, kind: "file", path: m.path, dumped: false };
  }
  return { ...base, flags: MAP_PRIVATE, kind: "file", path: m.path, dumped: true };
}

/**
 * What smaps tells of VMAs classified without it (classifyVma then guesses
 * from the name): which grow down (VmFlags "gd"), and their protection key
 * (pkey_mprotect) when it is not the default 0. Reading smaps walks every
 * page, so the dump does it while the pages are being copied.
 */
export function applySmaps(vmas: DumpVma[], smaps: Map<number, SmapsEntry>): void {
  for (const v of vmas) {
    const e = smaps.get(v.start);
    if (!e) continue;
    v.growsDown = e.vmFlags.includes("gd");
    if ((v.flags & MAP_ANONYMOUS) !== 0) v.flags = v.growsDown ? v.flags | MAP_GROWSDOWN : v.flags & ~MAP_GROWSDOWN;
    if (e.pkey !== undefined && e.pkey !== 0) v.pkey = e.pkey;
  }
}

/** Runs of pages of `vmas` that must be saved, in address order (see native.scanPages). */
export function pagesToDump(pid: number, vmas: DumpVma[]): PageRun[] {
  return native.scanPages(pid, vmas.filter((v) => v.dumped).map((v) => ({ start: v.start, end: v.end, anonOnly: v.kind === "file" })));
}

/**
 * The VMAs the task cannot read (no PROT_READ: PROT_NONE guard or parked
 * memory) that hold some of `runs`: the parasite opens them for reading
 * while it sends the pages, then puts their protection back. Both lists in
 * address order; runs never span two VMAs.
 */
export function unreadableWithPages(vmas: DumpVma[], runs: PageRun[]): { addr: number; len: number; prot: number }[] {
  const out: { addr: number; len: number; prot: number }[] = [];
  let r = 0;
  for (const v of vmas) {
    while (r < runs.length && runs[r]!.addr < v.start) r++;
    if ((v.prot & PROT_READ) === 0 && r < runs.length && runs[r]!.addr < v.end) out.push({ addr: v.start, len: v.end - v.start, prot: v.prot });
  }
  return out;
}

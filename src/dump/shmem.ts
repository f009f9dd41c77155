// Shared memory objects of the tree (anonymous shared mappings, memfds):
// each is dumped once, whoever maps or holds it, into shmem-ID.img: the
// non-zero pages only, read through the object itself (map_files/ or the
// fd), which sees every page whichever task faulted it in.
import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import { CrError } from "../errors.ts";
import type { FilesImage } from "../images/index.ts";
import * as img from "../images/index.ts";

type ShmemEntry = NonNullable<FilesImage["shmem"]>[number];
const PAGE = 4096;
const CHUNK = 1 << 20;

function isZeroPage(buf: Uint8Array, off: number): boolean {
  const words = new BigUint64Array(buf.buffer, buf.byteOffset + off, PAGE / 8);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0n) return false;
  return true;
}

type PageRuns = ShmemEntry["pages"];

/**
 * Copy the first `size` bytes of `src` into `out`, back to back, skipping
 * pages that are all zeros (holes and untouched memory read as such): the
 * runs say where each saved page belongs. A last partial page is stored
 * zero-padded to a full page; readers stop at `size`.
 */
export function copyNonZeroPages(src: number, out: number, size: number): { size: number; pages: PageRuns } {
  const pages: PageRuns = [];
  const buf = new Uint8Array(CHUNK);
  let written = 0;
  for (let at = 0; at < size; at += CHUNK) {
    const want = Math.min(CHUNK, size - at);
    const n = readSync(src, buf, 0, want, at);
    // Shorter than its size: it shrank under us (or a read error): not a consistent copy.
    if (n !== want) throw new Error(`short read at ${at + n} of ${size} bytes`);
    for (let p = 0; p < n; p += PAGE) {
      const len = Math.min(PAGE, n - p);
      if (len === PAGE && isZeroPage(buf, p)) continue;
      const page = buf.subarray(p, p + PAGE);
      if (len < PAGE) page.fill(0, len);
      const start = at + p;
      const last = pages[pages.length - 1];
      if (last && last.start + last.pages * PAGE === start) last.pages++;
      else pages.push({ start, pages: 1, offset: written });
      writeSync(out, page);
      written += PAGE;
    }
  }
  return { size, pages };
}

export class ShmemTable {
  readonly objects: ShmemEntry[] = [];

  constructor(private readonly dir: string) {}

  has(id: number): boolean {
    return this.objects.some((o) => o.id === id);
  }

  /** Dump object `id` (once), reading it through `source` (a /proc path that opens it). */
  add(id: number, name: string, source: string, pid: number): void {
    if (this.has(id)) return;
    let src: number;
    try {
      src = openSync(source, "r");
    } catch (e) {
      throw new CrError("dump", `cannot open shared memory ${name} through ${source}`, { pid, cause: e });
    }
    const out = openSync(join(this.dir, img.shmemFile(id)), "w", 0o600);
    try {
      let copy;
      try {
        copy = copyNonZeroPages(src, out, fstatSync(src).size);
      } catch (e) {
        throw new CrError("dump", `cannot copy shared memory ${name}: ${(e as Error).message}`, { pid, cause: e });
      }
      this.objects.push({ id, name, ...copy });
    } finally {
      closeSync(out);
      closeSync(src);
    }
  }

  fileNames(): string[] {
    return this.objects.map((o) => img.shmemFile(o.id));
  }
}

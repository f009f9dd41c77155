// Shared memory objects of the tree (anonymous shared mappings, memfds):
// each is dumped once, whoever maps or holds it, into shmem-ID.img: the
// non-zero pages only (native.copyNonZeroPages), read through the object
// itself (map_files/ or the fd), which sees every page whichever task
// faulted it in.
import { closeSync, fstatSync, openSync } from "node:fs";
import { join } from "node:path";
import { CrError } from "../errors.ts";
import type { FilesImage } from "../images/index.ts";
import * as img from "../images/index.ts";
import * as native from "../native/index.ts";

type ShmemEntry = NonNullable<FilesImage["shmem"]>[number];

export class ShmemTable {
  readonly objects: ShmemEntry[] = [];
  /** Each shmem-ID.img's digest, computed while it was written (for the manifest). */
  readonly digests = new Map<string, native.Digest>();

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
      const size = fstatSync(src).size;
      let copy;
      try {
        copy = native.copyNonZeroPages(src, out, size);
      } catch (e) {
        throw new CrError("dump", `cannot copy shared memory ${name}: ${(e as Error).message}`, { pid, cause: e });
      }
      this.objects.push({ id, name, size, pages: copy.pages });
      this.digests.set(img.shmemFile(id), copy.digest);
    } finally {
      closeSync(out);
      closeSync(src);
    }
  }

  fileNames(): string[] {
    return this.objects.map((o) => img.shmemFile(o.id));
  }
}

// Content saved as runs of non-zero pages (shmem-ID.img, ghost-ID.img; see
// copyNonZeroPages in src/dump/shmem.ts) written back into a file.
import { closeSync, ftruncateSync, openSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import { CrError } from "../errors.ts";

const PAGE = 4096;
const CHUNK = 1 << 20;

export interface PageRun {
  start: number;
  pages: number;
  offset: number;
}

/**
 * Make `fd` exactly `size` bytes: zeros (holes) except the saved runs, read
 * from DIR/NAME. A run's last page may be padding beyond `size`: not written.
 */
export function writeRuns(fd: number, dir: string, name: string, runs: readonly PageRun[], size: number): void {
  ftruncateSync(fd, size);
  const src = openSync(join(dir, name), "r");
  try {
    const buf = new Uint8Array(CHUNK);
    for (const run of runs) {
      const len = Math.max(0, Math.min(run.pages * PAGE, size - run.start));
      for (let done = 0; done < len;) {
        const want = Math.min(buf.length, len - done);
        const n = readSync(src, buf, 0, want, run.offset + done);
        if (n !== want) throw new CrError("restore", `${name}: short read at ${run.offset + done}`);
        for (let w = 0; w < n;) w += writeSync(fd, buf, w, n - w, run.start + done + w);
        done += n;
      }
    }
  } finally {
    closeSync(src);
  }
}

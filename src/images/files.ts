// The image directory on disk: 0700 directory, 0600 files, no symlinks or
// special files accepted when reading, fsync on request.
import {
  chmodSync, closeSync, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, rmdirSync, rmSync, statSync, writeSync,
} from "node:fs";
import { join } from "node:path";
import { CrError } from "../errors.ts";

/**
 * Make `dir` (0700) for a new image set. It must be new or empty: images
 * already there are never overwritten, nor mixed with a new set. Returns
 * the undo of a failed dump: every file written into `dir` removed, and
 * `dir` too when it was made here.
 */
/** A log cr wrote beside the images (`-o dump.log`, as CRIU): not an image, never in the manifest. */
export function isLogFile(name: string): boolean {
  return name.endsWith(".log");
}

export function createImageDir(dir: string): () => void {
  let made = false;
  try {
    made = !existsSync(dir);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = statSync(dir);
    if (!st.isDirectory()) throw new CrError("image", `${dir} is not a directory`);
    if (!made && readdirSync(dir).length > 0) throw new CrError("image", `${dir} is not empty: dump into a new or an empty directory`);
    chmodSync(dir, 0o700);
  } catch (e) {
    if (e instanceof CrError) throw e;
    throw new CrError("image", `cannot create image directory ${dir}: ${(e as Error).message}`, { cause: e });
  }
  // A failed dump's log (`-o`) is what tells why: it stays, and so does its directory.
  return () => {
    try {
      for (const name of readdirSync(dir)) if (!isLogFile(name)) rmSync(join(dir, name), { force: true });
      if (made && readdirSync(dir).length === 0) rmdirSync(dir);
    } catch {
      // Best effort: the dump's own error is the one to report.
    }
  };
}

/** Refuse a directory others could have written images into. */
export function checkImageDirSafe(dir: string): void {
  let st;
  try {
    st = lstatSync(dir);
  } catch (e) {
    throw new CrError("image", `cannot read image directory ${dir}: ${(e as Error).message}`, { cause: e });
  }
  if (!st.isDirectory()) throw new CrError("image", `${dir} is not a directory`);
  if ((st.mode & 0o022) !== 0) {
    throw new CrError("image", `${dir} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}): refusing to restore from it`);
  }
  if (process.getuid && st.uid !== process.getuid()) throw new CrError("image", `${dir} is owned by uid ${st.uid}, not by us`);
}

export function syncFile(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeImageFile(dir: string, name: string, data: Uint8Array, opts: { sync: boolean }): void {
  const fd = openSync(join(dir, name), "w", 0o600);
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    if (opts.sync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Stat an image file, refusing anything but a regular file. */
export function statImageFile(dir: string, name: string): { size: number } {
  let st;
  try {
    st = lstatSync(join(dir, name));
  } catch {
    throw new CrError("image", `${name}: missing from ${dir}`);
  }
  if (st.isSymbolicLink()) throw new CrError("image", `${name}: is a symlink, refusing it`);
  if (!st.isFile()) throw new CrError("image", `${name}: is not a regular file`);
  return { size: st.size };
}

export function readImageFile(dir: string, name: string, maxBytes = 256 << 20): Uint8Array {
  const { size } = statImageFile(dir, name);
  if (size > maxBytes) throw new CrError("image", `${name}: ${size} bytes is larger than any valid metadata file`);
  const buf = new Uint8Array(size);
  const fd = openSync(join(dir, name), "r");
  try {
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) throw new CrError("image", `${name}: changed while being read`);
      off += n;
    }
  } finally {
    closeSync(fd);
  }
  return buf;
}

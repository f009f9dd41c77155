// Deleted ("ghost") files the tree still holds: through an fd, a file mapping
// (an exe or a shared library replaced by an upgrade) or as its exe. Like
// CRIU, cr saves each such regular file once, however many fds, mappings and
// tasks use it (keyed by dev:ino), into ghost-ID.img: its non-zero pages, read
// through a /proc link that still opens it, plus the path it had, its size,
// mode, owner and mtime. Restore recreates it, opens it for every user and
// unlinks it again (src/restore/ghost.ts). A file above the ghost limit
// (`--ghost-limit`, CRIU's option) fails the dump naming it; deleted
// directories, FIFOs, sockets and devices are refused.
import { closeSync, openSync, readlinkSync, statSync, type BigIntStats } from "node:fs";
import { join } from "node:path";
import { CrError } from "../errors.ts";
import type { FilesImage, GhostImage } from "../images/index.ts";
import { ghostFile } from "../images/index.ts";
import type { MapsEntry } from "../proc/maps.ts";
import type { DumpVma } from "./memory.ts";
import * as native from "../native/index.ts";

/** What the kernel appends to the path of an unlinked file in /proc links and maps. */
export const DELETED = " (deleted)";
/**
 * Bigger than CRIU's 1 MiB: a replaced shared library or exe is commonly
 * several MiB and is exactly what ghosts are for; the limit guards against
 * copying a huge unlinked scratch file into the images by surprise.
 */
export const DEFAULT_GHOST_LIMIT = 64 << 20;

const UNITS: Record<string, number> = { "": 1, k: 1 << 10, m: 1 << 20, g: 1 << 30, t: 2 ** 40 };

/** A size as given on the command line: bytes, or with K, M, G or T (powers of 1024; "MiB", "MB", "m" alike). */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
  // "12b" is bytes; a lone "ib" is no unit.
  if (!m || (m[2] === "" && m[3] !== undefined && m[3].toLowerCase() !== "b")) {
    throw new Error(`bad size ${JSON.stringify(text)} (bytes, or a number with K, M, G or T)`);
  }
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  if (!Number.isSafeInteger(bytes)) throw new Error(`size ${JSON.stringify(text)} is too large`);
  return bytes;
}

/** "12.0 MiB" for messages. */
export function formatSize(bytes: number): string {
  if (bytes < 1 << 10) return `${bytes} B`;
  const [unit, div] = bytes < 1 << 20 ? ["KiB", 1 << 10] : bytes < 1 << 30 ? ["MiB", 1 << 20] : ["GiB", 1 << 30];
  return `${(bytes / div).toFixed(1)} ${unit}`;
}

/** What to call a file that is not a regular file, in "deleted ... are not supported yet". */
function kindName(st: BigIntStats): string {
  if (st.isDirectory()) return "directories";
  if (st.isFIFO()) return "FIFOs";
  if (st.isSocket()) return "sockets";
  if (st.isCharacterDevice() || st.isBlockDevice()) return "devices";
  return "files of this kind";
}

/**
 * Whether the /proc link text `link`, of the file `st`, names a deleted file:
 * it ends in " (deleted)" and no file of that very name is this one (a live
 * file may be called "x (deleted)").
 */
export function isDeleted(link: string, st: BigIntStats): boolean {
  if (!link.endsWith(DELETED)) return false;
  try {
    const named = statSync(link, { bigint: true });
    return named.dev !== st.dev || named.ino !== st.ino;
  } catch {
    return true;
  }
}

export class GhostTable {
  readonly ghosts: GhostImage[] = [];
  /** Each ghost-ID.img's digest, computed while it was written (for the manifest). */
  readonly digests = new Map<string, native.Digest>();
  /** Ghost id by "dev:ino". */
  private readonly byInode = new Map<string, number>();

  /** Ghosts are written into `dir`; none may be larger than `limit` bytes. */
  constructor(private readonly dir: string, readonly limit: number) {}

  /**
   * The ghost of the deleted file that `source` (a /proc path) opens, `st`
   * its stat, `path` where it was: saved on first sight. `what` names the
   * user for errors ("fd 3 -> /tmp/x (deleted)").
   */
  add(source: string, path: string, st: BigIntStats, what: string, pid: number): number {
    const key = `${st.dev}:${st.ino}`;
    const known = this.byInode.get(key);
    if (known !== undefined) return known;
    const unsupported = (why: string) => new CrError("dump", `unsupported: ${what} (${why})`, { pid });
    if (!st.isFile()) throw unsupported(`deleted ${kindName(st)} are not supported yet`);
    // Still linked elsewhere: a copy would no longer share writes with the
    // other name (CRIU's "link remap" case).
    if (st.nlink !== 0n) throw unsupported(`a deleted name of a file that still has ${st.nlink} other link(s) is not supported yet`);
    const size = Number(st.size);
    if (size > this.limit) {
      throw new CrError("dump", `ghost file too big: ${what} is ${formatSize(size)} (${size} bytes), over the ghost limit of ` +
        `${formatSize(this.limit)}; dump with --ghost-limit SIZE to save it anyway`, { pid });
    }
    const id = this.ghosts.length + 1;
    let src: number;
    try {
      src = openSync(source, "r");
    } catch (e) {
      throw new CrError("dump", `cannot open the deleted file of ${what} through ${source}`, { pid, cause: e });
    }
    try {
      const out = openSync(join(this.dir, ghostFile(id)), "w", 0o600);
      try {
        const { pages, digest } = native.copyNonZeroPages(src, out, size);
        this.ghosts.push({ id, path, size, mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), mtimeNs: st.mtimeNs, pages });
        this.digests.set(ghostFile(id), digest);
      } catch (e) {
        throw new CrError("dump", `cannot copy the deleted file of ${what}: ${(e as Error).message}`, { pid, cause: e });
      } finally {
        closeSync(out);
      }
    } finally {
      closeSync(src);
    }
    this.byInode.set(key, id);
    return id;
  }

  fileNames(): string[] {
    return this.ghosts.map((g) => ghostFile(g.id));
  }
}

type FileEntry = FilesImage["files"][number];

/** The record of a new description (pid, fd) of a deleted file: a regular file whose content is a ghost. */
export function deletedFileEntry(
  ghosts: GhostTable, pid: number, fd: number, target: string, st: BigIntStats, flags: number, pos: number,
): Omit<FileEntry, "id"> {
  const path = target.slice(0, -DELETED.length);
  const ghostId = ghosts.add(`/proc/${pid}/fd/${fd}`, path, st, `fd ${fd} -> ${target}`, pid);
  return { kind: "reg", path, flags, pos, mode: Number(st.mode), size: Number(st.size), mtimeNs: st.mtimeNs, ghostId };
}

/**
 * Give each file mapping of a deleted file its ghost (vmas[i] is maps[i]
 * classified). The mapped file is reached through /proc/PID/map_files.
 */
export function mapGhosts(ghosts: GhostTable, pid: number, maps: readonly MapsEntry[], vmas: DumpVma[]): void {
  maps.forEach((m, i) => {
    const v = vmas[i]!;
    if (!m.deleted || v.kind !== "file") return;
    const range = `${m.start.toString(16)}-${m.end.toString(16)}`;
    const what = `mapping 0x${m.start.toString(16)}-0x${m.end.toString(16)} ${m.path}${DELETED}`;
    const source = `/proc/${pid}/map_files/${range}`;
    let st: BigIntStats;
    try {
      st = statSync(source, { bigint: true });
    } catch (e) {
      throw new CrError("dump", `cannot reach the file of ${what} through ${source}`, { pid, cause: e });
    }
    if (!isDeleted(m.path + DELETED, st)) {
      v.path = m.path + DELETED;
      return;
    }
    v.ghostId = ghosts.add(source, m.path, st, what, pid);
  });
}

/** The task's exe: its path, and its ghost when it was deleted. */
export function exeOf(ghosts: GhostTable, pid: number): { exe: string; exeGhostId?: number } {
  const source = `/proc/${pid}/exe`;
  const link = readlinkSync(source);
  if (!link.endsWith(DELETED)) return { exe: link };
  const st = statSync(source, { bigint: true });
  if (!isDeleted(link, st)) return { exe: link };
  const path = link.slice(0, -DELETED.length);
  return { exe: path, exeGhostId: ghosts.add(source, path, st, `exe ${link}`, pid) };
}

// Ghost files at restore: the deleted files saved by src/dump/ghost.ts come
// back deleted. As CRIU does, cr recreates each one next to where it was (a
// new file "NAME.cr.PID-ID.ghost" in the original directory, filled from
// ghost-ID.img, with its mode, owner and mtime), hard-links it to its
// original name when that name is free, opens through that name every
// description and every mapping/exe fd the tree needs, then unlinks every
// name it made, all before any task exists: the tree sees the same
// "PATH (deleted)" in /proc/PID/fd, maps and exe. Differences from CRIU:
//  - the original name is taken (say, by the upgraded library that replaced
//    the deleted one): cr keeps the ghost's own name (CRIU links a
//    "NAME.cr_link"); only the name shown before " (deleted)" differs;
//  - missing directories on the way are created and removed again, like
//    CRIU; but where the directory cannot take a new file at all (read-only,
//    not writable, not a directory any more), where CRIU fails, cr recreates
//    the file in a private directory under $TMPDIR instead, so the tree
//    comes back with only the path differing (an exe there needs a mount
//    that allows exec).
// On every failure path, the names and directories cr made are removed and
// the fds it opened are closed: a failed restore leaves nothing on disk.
import {
  closeSync, constants, fchmodSync, fchownSync, fstatSync, futimesSync, linkSync, lstatSync, mkdirSync, mkdtempSync,
  openSync, rmdirSync, statSync, unlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { CrError } from "../errors.ts";
import type { FilesImage, GhostImage, TaskImage } from "../images/index.ts";
import { ghostFile } from "../images/index.ts";
import * as native from "../native/index.ts";
import { writeRuns } from "./runs.ts";

const O_RDONLY = 0, O_RDWR = 2;
const MAP_SHARED = 1, PROT_WRITE = 2;
/** Why a directory cannot take the ghost, in which case cr uses a private one under $TMPDIR. */
const FALLBACK = new Set(["EROFS", "EACCES", "EPERM", "ENOTDIR", "ENOSPC", "EDQUOT"]);

type FileRecord = FilesImage["files"][number];

/** What the tree's mappings and exe need of a ghost: a read-only fd, a read-write one (writable shared mappings). */
export interface GhostUse {
  read: boolean;
  write: boolean;
}

/** The fds of a ghost for mappings and the exe. */
export interface GhostMapFds {
  read?: number;
  write?: number;
}

export interface GhostFds {
  /** files.cbor id of a description of a ghost -> its fd. */
  files: Map<number, number>;
  /** Ghost id -> its fds for mappings and the exe. */
  maps: Map<number, GhostMapFds>;
  /** Every fd opened, for the caller to close once the tree is forked. */
  opened: number[];
}

/** Which ghosts the mappings and exes of `tasks` need, and how. */
export function ghostUses(tasks: Iterable<TaskImage>): Map<number, GhostUse> {
  const uses = new Map<number, GhostUse>();
  const need = (id: number, write: boolean) => {
    const u = uses.get(id) ?? { read: false, write: false };
    if (write) u.write = true;
    else u.read = true;
    uses.set(id, u);
  };
  for (const t of tasks) {
    if (t.exeGhostId !== undefined) need(t.exeGhostId, false);
    for (const v of t.mm.vmas) {
      if (v.ghostId !== undefined) need(v.ghostId, (v.flags & MAP_SHARED) !== 0 && (v.prot & PROT_WRITE) !== 0);
    }
  }
  return uses;
}

/** The name of a ghost while it is being made, next to its original name (short enough for NAME_MAX). */
export function ghostTempName(path: string, id: number, pid: number): string {
  const base = basename(path);
  const suffix = `.cr.${pid}-${id}.ghost`;
  return Buffer.byteLength(base) + suffix.length <= 255 ? base + suffix : suffix;
}

const codeOf = (e: unknown) => (e as NodeJS.ErrnoException).code ?? "";

/** A recreated ghost: the name to open it by, its inode, and how to remove every name and directory made for it. */
interface Recreated {
  path: string;
  ino: bigint;
  undo: () => void;
}

/** Create the missing directories of `dir` (0700), recording each in `made`, outermost first. */
function makeDirs(dir: string, made: string[]): void {
  const missing: string[] = [];
  // Bounded by the depth of the path.
  for (let d = dir; ; d = dirname(d)) {
    try {
      if (!statSync(d).isDirectory()) throw Object.assign(new Error(`${d} is not a directory`), { code: "ENOTDIR" });
      break;
    } catch (e) {
      if (codeOf(e) !== "ENOENT" || d === "/") throw e;
      missing.unshift(d);
    }
  }
  for (const d of missing) {
    mkdirSync(d, 0o700);
    made.push(d);
  }
}

/** Ghost `g` back on disk (see the top of this file); throws with nothing left behind. */
function recreate(g: GhostImage, imageDir: string, log: (msg: string) => void): Recreated {
  const names: string[] = [];
  const dirs: string[] = [];
  let ino = -1n;
  const undo = () => {
    for (const name of names.splice(0).reverse()) {
      try {
        // Only a name that is still ours: never what someone put there since.
        if (lstatSync(name, { bigint: true }).ino === ino) unlinkSync(name);
      } catch {
        // Gone already.
      }
    }
    for (const d of dirs.splice(0).reverse()) {
      try {
        rmdirSync(d);
      } catch {
        // Not empty (someone else's files now): left alone.
      }
    }
  };
  const create = (path: string) => openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    let tmp = join(dirname(g.path), ghostTempName(g.path, g.id, process.pid));
    let fd: number;
    try {
      makeDirs(dirname(g.path), dirs);
      fd = create(tmp);
    } catch (e) {
      if (!FALLBACK.has(codeOf(e))) throw e;
      undo();
      const own = mkdtempSync(join(tmpdir(), "cr-ghost-"));
      dirs.push(own);
      tmp = join(own, basename(g.path));
      fd = create(tmp);
      log(`ghost ${g.id}: ${dirname(g.path)} cannot take it (${codeOf(e)}), recreated in ${own} instead`);
    }
    names.push(tmp);
    try {
      ino = fstatSync(fd, { bigint: true }).ino;
      writeRuns(fd, imageDir, ghostFile(g.id), g.pages, g.size);
      fchownSync(fd, g.uid, g.gid);
      // After chown, which clears set-user-ID and set-group-ID.
      fchmodSync(fd, g.mode & 0o7777);
      futimesSync(fd, Date.now() / 1000, Number(g.mtimeNs) / 1e9);
    } finally {
      closeSync(fd);
    }
    let path = tmp;
    if (dirname(tmp) === dirname(g.path)) {
      try {
        linkSync(tmp, g.path);
        names.push(g.path);
        path = g.path;
      } catch (e) {
        // The name is taken (or links are not supported): the ghost keeps its own name.
        log(`ghost ${g.id}: cannot link it to ${g.path} (${codeOf(e) || (e as Error).message}), opened as ${tmp}`);
      }
    }
    return { path, ino, undo };
  } catch (e) {
    undo();
    if (e instanceof CrError) throw e;
    throw new CrError("restore", `cannot recreate the deleted file ${g.path} (ghost ${g.id}): ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Recreate every ghost that the descriptions `ids` (files.cbor ids) or the
 * mappings and exes (`uses`) need, open them at fd numbers >= minFd, and
 * unlink them again.
 */
export function openGhosts(
  files: FilesImage, ids: ReadonlySet<number>, uses: ReadonlyMap<number, GhostUse>, imageDir: string, minFd: number,
  reopenFlags: (f: FileRecord) => number, log: (msg: string) => void = () => {},
): GhostFds {
  const ghosts = new Map((files.ghosts ?? []).map((g) => [g.id, g]));
  const descriptions = new Map<number, FileRecord[]>();
  for (const f of files.files) {
    if (f.ghostId === undefined || !ids.has(f.id)) continue;
    descriptions.set(f.ghostId, [...(descriptions.get(f.ghostId) ?? []), f]);
  }
  const out: GhostFds = { files: new Map(), maps: new Map(), opened: [] };
  try {
    for (const id of [...new Set([...descriptions.keys(), ...uses.keys()])].sort((a, b) => a - b)) {
      const g = ghosts.get(id);
      if (!g) throw new CrError("restore", `files.cbor has no ghost file ${id}`);
      const made = recreate(g, imageDir, log);
      try {
        const open = (flags: number, pos: number) => {
          const fd = native.openFile(made.path, flags, pos, minFd);
          out.opened.push(fd);
          if (fstatSync(fd, { bigint: true }).ino !== made.ino) throw new CrError("restore", `${made.path} was replaced while cr recreated it`);
          return fd;
        };
        for (const f of descriptions.get(id) ?? []) out.files.set(f.id, open(reopenFlags(f), f.pos));
        const use = uses.get(id);
        if (use) out.maps.set(id, { ...(use.read ? { read: open(O_RDONLY, 0) } : {}), ...(use.write ? { write: open(O_RDWR, 0) } : {}) });
        log(`ghost ${id}: ${g.path} (${g.size} bytes) recreated as ${made.path}, opened, unlinked`);
      } finally {
        made.undo();
      }
    }
  } catch (e) {
    for (const fd of out.opened) native.closeFd(fd);
    throw e;
  }
  return out;
}

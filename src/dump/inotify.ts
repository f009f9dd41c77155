// inotify instances: each watch as its wd, its mask and the path of what it
// watches. fdinfo names the watched object by device, inode and file handle
// only: cr opens the handle (open_by_handle_at, through a mount of that
// device in the task's mount namespace) and reads the path of what it got.
// A watch whose object was deleted, or cannot be found again by its path,
// fails the dump (cr could not watch it at restore).
import { closeSync, constants, lstatSync, openSync, readFileSync, readlinkSync } from "node:fs";
import { CrError } from "../errors.ts";
import type { FilesImage } from "../images/index.ts";
import * as native from "../native/index.ts";
import { parseInotifyWatches, type InotifyWatch } from "../proc/fdinfo.ts";
import { mountOf, parseMountinfo, type Mount } from "../proc/mountinfo.ts";

export const INOTIFY_TARGET = "anon_inode:inotify";
const IN_DONT_FOLLOW = 0x2000000;

type Watch = NonNullable<FilesImage["files"][number]["inotify"]>["watches"][number];

/** st_dev as the kernel holds it (major << 20 | minor), as fdinfo's sdev shows it. */
const kernelMajor = (sdev: number) => Math.floor(sdev / 0x100000);
const kernelMinor = (sdev: number) => sdev % 0x100000;

/** major and minor of a user-space st_dev (glibc's encoding). */
function userDev(dev: bigint): [number, number] {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return [major, minor];
}

/** Reads the watches of one inotify fd of one task. */
class WatchReader {
  private mounts: Mount[] | undefined;
  /** Mount fds by sdev, closed by close(). */
  private readonly mountFds = new Map<number, number>();

  constructor(private readonly pid: number, private readonly fail: (wd: number, why: string) => CrError) {}

  private mountFd(w: InotifyWatch): number {
    let fd = this.mountFds.get(w.sdev);
    if (fd !== undefined) return fd;
    this.mounts ??= parseMountinfo(readFileSync(`/proc/${this.pid}/mountinfo`, "utf8"));
    const m = mountOf(this.mounts, kernelMajor(w.sdev), kernelMinor(w.sdev));
    if (!m) throw this.fail(w.wd, `no mount of its device ${kernelMajor(w.sdev)}:${kernelMinor(w.sdev)} in the task's mountinfo`);
    try {
      // Not O_PATH: open_by_handle_at refuses an O_PATH mount fd.
      fd = openSync(`/proc/${this.pid}/root${m.mountPoint}`, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    } catch (e) {
      throw this.fail(w.wd, `cannot open the mount ${m.mountPoint} of its filesystem: ${(e as Error).message}`);
    }
    this.mountFds.set(w.sdev, fd);
    return fd;
  }

  /**
   * The path of the object of watch `w`, checked to lead to that object now,
   * and whether that object is a symbolic link (watched with IN_DONT_FOLLOW).
   */
  path(w: InotifyWatch): { path: string; symlink: boolean } {
    if (!w.handle) throw this.fail(w.wd, "its filesystem gives no file handle to find the watched file by");
    let obj: number;
    try {
      obj = native.openByHandle(this.mountFd(w), w.handle.type, w.handle.bytes, this.pid);
    } catch (e) {
      const stale = e instanceof CrError && e.errno === 116;
      throw this.fail(w.wd, stale ? `the watched file (inode ${w.ino}) was deleted` : `cannot open the watched file (inode ${w.ino}): ${(e as Error).message}`);
    }
    let path: string;
    try {
      path = readlinkSync(`/proc/self/fd/${obj}`);
    } finally {
      native.closeFd(obj);
    }
    if (path.endsWith(" (deleted)")) throw this.fail(w.wd, `the watched file ${path} was deleted`);
    let same = false;
    let symlink = false;
    try {
      const st = lstatSync(path, { bigint: true });
      const [major, minor] = userDev(st.dev);
      same = st.ino === BigInt(w.ino) && major === kernelMajor(w.sdev) && minor === kernelMinor(w.sdev);
      symlink = st.isSymbolicLink();
    } catch {
      // Not there by that path: the check below says so.
    }
    if (!same) throw this.fail(w.wd, `the watched file (inode ${w.ino}) is not reachable by its path ${path}`);
    return { path, symlink };
  }

  close(): void {
    for (const fd of this.mountFds.values()) closeSync(fd);
    this.mountFds.clear();
  }
}

/** The watches of inotify fd `fd` of frozen task `pid`, whose fdinfo is `text`, in wd order. */
export function inotifyWatches(pid: number, fd: number, text: string): Watch[] {
  const fail = (wd: number, why: string) => new CrError("dump", `unsupported: fd ${fd} -> ${INOTIFY_TARGET} (watch wd ${wd}: ${why})`, { pid });
  let watches: InotifyWatch[];
  try {
    watches = parseInotifyWatches(text);
  } catch (e) {
    throw new CrError("dump", `unsupported: fd ${fd} -> ${INOTIFY_TARGET} (cannot read its watches: ${(e as Error).message})`, { pid });
  }
  const reader = new WatchReader(pid, fail);
  try {
    return watches.map((w) => {
      const { path, symlink } = reader.path(w);
      // fdinfo does not show IN_DONT_FOLLOW; a watch on a link itself had it.
      return { wd: w.wd, mask: symlink ? w.mask | IN_DONT_FOLLOW : w.mask, path };
    });
  } finally {
    reader.close();
  }
}

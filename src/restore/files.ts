// Every open file description the restored tree needs, created by cr itself
// before the first fork (files re-opened at their position, pipes re-created
// with their buffered bytes): the tasks only dup them to their fd numbers, so
// descriptions shared by dup or fork stay shared, and a file that cannot be
// opened fails the restore before any process exists.
import { CrError } from "../errors.ts";
import type { FilesImage } from "../images/index.ts";
import * as native from "../native/index.ts";

const O_ACCMODE = 3, O_WRONLY = 1, O_RDWR = 2;
const O_CREAT = 0o100, O_EXCL = 0o200, O_NOCTTY = 0o400, O_TRUNC = 0o1000;

export interface SharedFds {
  /** The shared fd table, ascending (the order libcr compacts it in). */
  fds: number[];
  /** files.cbor id -> index in `fds`. */
  index: Map<number, number>;
  /** Every fd cr opened for this, table or not: close them all once the tree is forked. */
  opened: number[];
}

export function closeAll(fds: number[]): void {
  for (const fd of fds) native.closeFd(fd);
}

/** Open the descriptions of `ids` at fd numbers >= minFd. */
export function openSharedFiles(files: FilesImage, ids: ReadonlySet<number>, minFd: number): SharedFds {
  const byId = new Map(files.files.map((f) => [f.id, f]));
  const pipes = new Map((files.pipes ?? []).map((p) => [p.id, p]));
  const made = new Map<number, { ends: [number, number]; taken: [boolean, boolean] }>();
  const opened: number[] = [];
  const pairs: { id: number; fd: number }[] = [];
  try {
    for (const id of [...ids].sort((a, b) => a - b)) {
      const f = byId.get(id);
      if (!f) throw new CrError("restore", `files.cbor has no file ${id}`);
      let fd: number;
      if (f.kind === "pipe") {
        const pipe = f.pipeId === undefined ? undefined : pipes.get(f.pipeId);
        if (!pipe) throw new CrError("restore", `files.cbor: file ${id} is a pipe without a pipe record`);
        let m = made.get(pipe.id);
        if (!m) {
          m = { ends: native.makePipe(pipe.size, pipe.data, minFd), taken: [false, false] };
          opened.push(...m.ends);
          made.set(pipe.id, m);
        }
        const end = (f.flags & O_ACCMODE) === O_WRONLY ? 1 : 0;
        if ((f.flags & O_ACCMODE) === O_RDWR) throw new CrError("restore", `files.cbor: pipe end ${id} is open read-write`);
        if (m.taken[end]) {
          // A second description of the same end (opened through /proc/PID/fd).
          fd = native.openFile(`/proc/self/fd/${m.ends[end]}`, f.flags & O_ACCMODE, 0, minFd);
          opened.push(fd);
        } else {
          fd = m.ends[end];
          m.taken[end] = true;
        }
        native.setFileFlags(fd, f.flags & ~O_ACCMODE);
      } else {
        fd = native.openFile(f.path, f.flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY), f.kind === "reg" ? f.pos : 0, minFd);
        opened.push(fd);
      }
      pairs.push({ id, fd });
    }
  } catch (e) {
    closeAll(opened);
    throw e;
  }
  pairs.sort((a, b) => a.fd - b.fd);
  return { fds: pairs.map((p) => p.fd), index: new Map(pairs.map((p, i) => [p.id, i])), opened };
}

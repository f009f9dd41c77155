// Open files of the frozen tree: one table of open file descriptions for all
// tasks (fds that share a description, by dup or by fork, are found with
// kcmp and point to one entry), and each task's fds into it. Supported:
// regular files, directories, character devices by path, pipes (with the
// bytes buffered in them, read without consuming them) and memfds (content
// in the ShmemTable). Anything else
// stops the dump with the fd, its target and the pid named.
import { closeSync, constants, openSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { CrError } from "../errors.ts";
import type { FilesImage } from "../images/index.ts";
import * as native from "../native/index.ts";
import { parseFdinfo } from "../proc/fdinfo.ts";
import { listFds } from "../proc/read.ts";
import type { ShmemTable } from "./shmem.ts";

type FileEntry = FilesImage["files"][number];
type PipeEntry = NonNullable<FilesImage["pipes"]>[number];

export interface DumpFd {
  fd: number;
  fileId: number;
  cloexec: boolean;
}

const O_CLOEXEC = 0o2000000;

/** Open file descriptions seen so far, across every task of the tree. */
export class FileTable {
  readonly files: FileEntry[] = [];
  readonly pipes: PipeEntry[] = [];
  /** Candidates for kcmp, by "dev:ino" of what the fd points to. */
  private readonly byInode = new Map<string, { pid: number; fd: number; id: number }[]>();

  constructor(private readonly shmem: ShmemTable) {}

  /** The id of an existing description that (pid, fd) shares, if any. */
  private known(key: string, pid: number, fd: number): number | undefined {
    for (const c of this.byInode.get(key) ?? []) {
      if (native.sameFile(c.pid, c.fd, pid, fd)) return c.id;
    }
    return undefined;
  }

  private add(key: string, pid: number, fd: number, entry: Omit<FileEntry, "id">): number {
    const id = this.files.length + 1;
    this.files.push({ id, ...entry });
    const list = this.byInode.get(key) ?? [];
    list.push({ pid, fd, id });
    this.byInode.set(key, list);
    return id;
  }

  private addPipe(pid: number, fd: number, ino: number): void {
    if (this.pipes.some((p) => p.id === ino)) return;
    // A read description of our own on the same pipe: tee needs one.
    let peek: number;
    try {
      peek = openSync(`/proc/${pid}/fd/${fd}`, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      throw new CrError("dump", `cannot open pipe:[${ino}] of fd ${fd} to read its buffer`, { pid, cause: e });
    }
    try {
      const { data, size } = native.peekPipe(peek, pid);
      this.pipes.push({ id: ino, size, data });
    } finally {
      closeSync(peek);
    }
  }

  /** Every fd of frozen task `pid`, as references into the table. */
  collect(pid: number): DumpFd[] {
    const fds: DumpFd[] = [];
    for (const fd of listFds(pid)) {
      const link = `/proc/${pid}/fd/${fd}`;
      let target: string;
      let st;
      let info;
      try {
        target = readlinkSync(link);
        st = statSync(link, { bigint: true });
        info = parseFdinfo(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"));
      } catch (e) {
        throw new CrError("dump", `fd ${fd} vanished while being read`, { pid, cause: e });
      }
      const unsupported = (why: string) => new CrError("dump", `unsupported: fd ${fd} -> ${target} (${why})`, { pid });
      const key = `${st.dev}:${st.ino}`;
      const flags = info.flags & ~O_CLOEXEC;
      let id = this.known(key, pid, fd);
      if (id === undefined) {
        const pipe = /^pipe:\[(\d+)\]$/.exec(target);
        if (pipe) {
          const ino = Number(pipe[1]);
          this.addPipe(pid, fd, ino);
          id = this.add(key, pid, fd, { kind: "pipe", path: target, flags, pos: 0, pipeId: ino });
        } else if (target.startsWith("/memfd:") && target.endsWith(" (deleted)")) {
          const ino = Number(st.ino);
          this.shmem.add(ino, target.slice(0, -" (deleted)".length), link, pid);
          id = this.add(key, pid, fd, { kind: "memfd", path: target, flags, pos: info.pos, shmemId: ino });
        } else {
          if (!target.startsWith("/")) throw unsupported("this kind of file is not supported yet");
          if (target.endsWith(" (deleted)")) throw unsupported("deleted files are not supported yet");
          let kind: "reg" | "dir" | "chr";
          if (st.isFile()) kind = "reg";
          else if (st.isDirectory()) kind = "dir";
          else if (st.isCharacterDevice()) {
            if (/^\/dev\/(pts\/|tty|console)/.test(target)) throw unsupported("terminals are not supported yet");
            kind = "chr";
          } else throw unsupported(st.isFIFO() ? "named FIFOs are not supported yet" : "this kind of file is not supported yet");
          id = this.add(key, pid, fd, {
            kind, path: target, flags, pos: info.pos, mode: Number(st.mode),
            ...(kind === "reg" ? { size: Number(st.size), mtimeNs: st.mtimeNs } : {}),
            ...(kind === "chr" ? { rdev: Number(st.rdev) } : {}),
          });
        }
      }
      fds.push({ fd, fileId: id, cloexec: (info.flags & O_CLOEXEC) !== 0 });
    }
    return fds;
  }

  image(): FilesImage {
    return { files: this.files, pipes: this.pipes, shmem: this.shmem.objects };
  }
}

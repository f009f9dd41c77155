// Open files of a frozen task: what each fd points to and how to re-open it.
// Supported now: regular files, directories and character devices by path.
// Anything else stops the dump with the fd, its target and the pid named.
import { readFileSync, readlinkSync, statSync } from "node:fs";
import { CrError } from "../errors.ts";
import { parseFdinfo } from "../proc/fdinfo.ts";
import { listFds } from "../proc/read.ts";

export type FileKind = "reg" | "chr" | "dir";

export interface DumpFile {
  id: number;
  kind: FileKind;
  path: string;
  flags: number;
  pos: number;
  size?: number;
  mtimeNs?: bigint;
  mode?: number;
  rdev?: number;
}

export interface DumpFd {
  fd: number;
  fileId: number;
  cloexec: boolean;
}

const O_CLOEXEC = 0o2000000;

export function collectFiles(pid: number, firstId: number): { files: DumpFile[]; fds: DumpFd[] } {
  const files: DumpFile[] = [];
  const fds: DumpFd[] = [];
  for (const fd of listFds(pid)) {
    const link = `/proc/${pid}/fd/${fd}`;
    let target: string;
    try {
      target = readlinkSync(link);
    } catch (e) {
      throw new CrError("dump", `fd ${fd} vanished while being read`, { pid, cause: e });
    }
    const unsupported = (why: string) =>
      new CrError("dump", `unsupported: fd ${fd} -> ${target} (${why})`, { pid });
    if (!target.startsWith("/")) throw unsupported(target.startsWith("pipe:") ? "pipes are not supported yet" : "this kind of file is not supported yet");
    if (target.endsWith(" (deleted)")) throw unsupported("deleted files are not supported yet");
    const st = statSync(link, { bigint: true });
    const info = parseFdinfo(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"));
    let kind: FileKind;
    if (st.isFile()) kind = "reg";
    else if (st.isDirectory()) kind = "dir";
    else if (st.isCharacterDevice()) {
      if (/^\/dev\/(pts\/|tty|console)/.test(target)) throw unsupported("terminals are not supported yet");
      kind = "chr";
    } else throw unsupported("this kind of file is not supported yet");
    const id = firstId + files.length;
    files.push({
      id, kind, path: target, flags: info.flags & ~O_CLOEXEC, pos: info.pos,
      mode: Number(st.mode),
      ...(kind === "reg" ? { size: Number(st.size), mtimeNs: st.mtimeNs } : {}),
      ...(kind === "chr" ? { rdev: Number(st.rdev) } : {}),
    });
    fds.push({ fd, fileId: id, cloexec: (info.flags & O_CLOEXEC) !== 0 });
  }
  return { files, fds };
}

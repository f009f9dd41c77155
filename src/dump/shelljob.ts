// A job of an interactive shell, at dump (CRIU's --shell-job): its session,
// and often its process group, are led by the shell, outside the dumped
// tree, and its stdio is that session's terminal. Without --shell-job such a
// terminal is refused with a hint; with it, fds to the outside session's
// controlling terminal are recorded as kind "tty" (restore gives the job cr
// restore's own terminal instead) and the outside ids as tree.cbor's
// `external`, with the terminal's modes.
import { closeSync, constants, openSync } from "node:fs";
import { CrError } from "../errors.ts";
import type { FilesImage, TreeImage } from "../images/index.ts";
import { parseStat, type ProcStat } from "../proc/stat.ts";
import { readProcText } from "../proc/read.ts";
import * as native from "../native/index.ts";
import type { DumpTask } from "./tree.ts";

type FileEntry = FilesImage["files"][number];
type External = NonNullable<TreeImage["external"]>;

/** makedev(5, 0): /dev/tty, which stands for the opener's controlling terminal. */
export const DEV_TTY = (5 << 8) | 0;

/** What the tree had outside itself, whether --shell-job was given or not. */
export interface JobContext {
  shellJob: boolean;
  /** The root's session (and group) when led outside the tree, else undefined. */
  external?: External;
  /** The outside session's controlling terminal (as /proc/PID/stat's tty_nr), 0: none. */
  ctty: number;
}

/**
 * The ids of the tree's root seen from the tree: `external` when its session
 * is not led by one of the tree's tasks; its group too when the group is not;
 * and the terminal's foreground group when it is one of the tree's (or the
 * outside group the root is in).
 */
export function jobContext(tasks: readonly DumpTask[], rootStat: Pick<ProcStat, "ttyNr" | "tpgid">, shellJob: boolean): JobContext {
  const root = tasks[0];
  if (!root) throw new CrError("dump", "empty tree");
  const pids = new Set(tasks.map((t) => t.pid));
  if (pids.has(root.sid)) return { shellJob, ctty: 0 };
  const pgid = pids.has(root.pgid) ? undefined : root.pgid;
  const fg = rootStat.tpgid;
  const leadsFg = tasks.some((t) => t.pid === fg && t.pgid === fg && t.sid === root.sid && t.state !== "zombie");
  const foreground = rootStat.ttyNr !== 0 && fg > 0 && (fg === pgid || leadsFg) ? fg : undefined;
  return {
    shellJob,
    external: { sid: root.sid, ...(pgid === undefined ? {} : { pgid }), ...(foreground === undefined ? {} : { foreground }) },
    ctty: rootStat.ttyNr,
  };
}

/** tree.cbor's `external`: only a --shell-job dump records it (restore then needs --shell-job too). */
export function treeExternal(job: JobContext): External | undefined {
  return job.shellJob ? job.external : undefined;
}

/** "master" for a pseudo-terminal master, "terminal" for any other terminal, null for anything else. */
export function terminalKind(target: string): "master" | "terminal" | null {
  if (target === "/dev/ptmx" || target === "/dev/pts/ptmx") return "master";
  if (/^\/dev\/(pts\/\d+$|tty|console$)/.test(target)) return "terminal";
  return null;
}

/** One fd of the tree to a terminal, as the dump sees it. */
export interface TerminalFd {
  pid: number;
  fd: number;
  target: string;
  /** st_rdev of the fd (same encoding as tty_nr for every real terminal). */
  rdev: number;
  /** tty_nr of the holder's session (for /dev/tty, which is whatever that is). */
  holderTty: () => number;
}

/**
 * Why the tree cannot keep this terminal fd, or null when it is the outside
 * session's controlling terminal and --shell-job allows it.
 */
export function terminalProblem(job: JobContext, t: TerminalFd): { why: string; hint: boolean } | null {
  if (terminalKind(t.target) === "master") return { why: "pseudo-terminal masters are not supported yet", hint: false };
  if (!job.external) {
    return { why: "the dumped tree leads its own session; only the terminal of a session led outside the tree is supported, with --shell-job", hint: false };
  }
  const jobs = job.ctty !== 0 && (t.rdev === job.ctty || (t.rdev === DEV_TTY && t.holderTty() === job.ctty));
  if (!jobs) return { why: "only the controlling terminal of the session outside the dumped tree is supported, with --shell-job", hint: false };
  if (!job.shellJob) return { why: "a terminal (use --shell-job to dump a job of an interactive shell)", hint: true };
  return null;
}

/**
 * The job's terminal as the FileTable meets it: `entry` is the FileTable hook
 * for terminal fds (a "tty" entry, or the error naming the fd, its target and
 * the pid); `termios` the terminal's modes, read through the first fd taken
 * (not a /dev/tty one: opened from cr, that would be cr's own terminal).
 */
export class JobTerminal {
  termios: Uint8Array | undefined;
  private readonly ttyOf = new Map<number, number>();

  constructor(private readonly job: JobContext) {}

  private holderTty(pid: number): number {
    let n = this.ttyOf.get(pid);
    if (n === undefined) {
      try {
        n = parseStat(readProcText(pid, "stat")).ttyNr;
      } catch (e) {
        throw new CrError("dump", "process vanished while its terminal was looked at", { pid, errno: 3, cause: e });
      }
      this.ttyOf.set(pid, n);
    }
    return n;
  }

  private readModes(pid: number, fd: number, target: string): void {
    let t: number;
    try {
      t = openSync(`/proc/${pid}/fd/${fd}`, constants.O_RDONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
    } catch (e) {
      throw new CrError("dump", `cannot open the terminal ${target} of fd ${fd} to read its modes`, { pid, cause: e });
    }
    try {
      this.termios = native.getTermios(t);
    } finally {
      closeSync(t);
    }
  }

  readonly entry = (pid: number, fd: number, target: string, rdev: number, mode: number, flags: number): Omit<FileEntry, "id"> => {
    const problem = terminalProblem(this.job, { pid, fd, target, rdev, holderTty: () => this.holderTty(pid) });
    if (problem?.hint) throw new CrError("dump", `fd ${fd} -> ${target}: ${problem.why}`, { pid });
    if (problem) throw new CrError("dump", `unsupported: fd ${fd} -> ${target} (${problem.why})`, { pid });
    if (this.termios === undefined && rdev !== DEV_TTY) this.readModes(pid, fd, target);
    return { kind: "tty", path: target, flags, pos: 0, mode, rdev, tty: { ctty: true } };
  };
}
export type TerminalEntry = JobTerminal["entry"];

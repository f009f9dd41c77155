// A shell job at restore (CRIU's --shell-job): the tree goes into cr
// restore's own session; the root's outside process group, if it had one,
// is cr's group (see orderTasks); every "tty" description is a new open file
// description of cr's own terminal; and a job that was the foreground of its
// terminal becomes the foreground of cr's (unless restoring detached, or cr is
// not in the foreground itself), with the job's terminal modes; cr, its
// parent, then relays its stops to the shell. Everything is decided before
// the first fork, so a shell job that cannot be attached fails with nothing
// created.
import { closeSync, constants, openSync, readFileSync } from "node:fs";
import { isatty } from "node:tty";
import { CrError } from "../errors.ts";
import type { ImageSet } from "../images/index.ts";
import * as native from "../native/index.ts";
import { parseStat } from "../proc/stat.ts";

type External = NonNullable<ImageSet["tree"]["external"]>;

/** cr's own ids, and its controlling terminal with that terminal's foreground group. */
export interface SelfIds {
  pgid: number;
  sid: number;
  /** Controlling terminal (tty_nr), 0: none. */
  ttyNr: number;
  /** Its foreground process group (-1: no terminal). */
  tpgid: number;
}

export function selfIds(): SelfIds {
  const st = parseStat(readFileSync("/proc/self/stat", "utf8"));
  return { pgid: st.pgrp, sid: st.session, ttyNr: st.ttyNr, tpgid: st.tpgid };
}

/** What in the images needs --shell-job, for the error message; null: nothing. */
export function shellJobNeed(images: Pick<ImageSet, "tree" | "files" | "tasks">): string | null {
  const why: string[] = [];
  const ext = images.tree.external;
  if (ext) why.push(`the root's session leader ${ext.sid} is outside the dumped tree`);
  const tty = images.files.files.find((f) => f.kind === "tty");
  if (tty) {
    const holder = [...images.tasks.values()].find((t) => t.task.fds.some((f) => f.fileId === tty.id));
    const fd = holder?.task.fds.find((f) => f.fileId === tty.id);
    why.push(holder && fd ? `fd ${fd.fd} of pid ${holder.task.pid} is its terminal ${tty.path}` : `terminal ${tty.path}`);
  }
  return why.length > 0 ? why.join(", ") : null;
}

/**
 * The path cr opens for the job's terminal: the first of its stdin, stdout
 * and stderr that is a terminal, else its controlling terminal (/dev/tty),
 * else null.
 */
export function findTerminal(isTty: (fd: number) => boolean, hasCtty: boolean): string | null {
  for (const fd of [0, 1, 2]) if (isTty(fd)) return `/proc/self/fd/${fd}`;
  return hasCtty ? "/dev/tty" : null;
}

/**
 * The group to make the foreground of cr's terminal once the tree is
 * created, or 0: only a group the tree leads that was the foreground at dump,
 * only when cr stays the job's parent (not detached), and only when cr is the
 * foreground itself (it would take the terminal from whoever has it).
 */
export function foregroundPgid(ext: External | undefined, detached: boolean, self: SelfIds): number {
  const fg = ext?.foreground;
  if (!takesTerminal(ext, detached, self) || fg === undefined || fg === ext?.pgid) return 0;
  return fg;
}

/**
 * Whether the restored job takes cr's terminal over: it was the foreground
 * of its terminal at dump (its own group or the outside one, which is cr's
 * now), cr stays its parent (not detached) and cr is the foreground itself.
 */
export function takesTerminal(ext: External | undefined, detached: boolean, self: SelfIds): boolean {
  return !detached && ext?.foreground !== undefined && self.ttyNr !== 0 && self.tpgid === self.pgid;
}

export interface ShellJob {
  /** cr's process group: the tasks of the root's outside group join it. */
  crPgid: number;
  /** What cr opens for each "tty" description; undefined when the images have none. */
  terminal?: string;
  /** See foregroundPgid; the terminal to do it on is cr's controlling terminal, /dev/tty. */
  foreground: number;
  /** See takesTerminal: then the terminal gets the job's modes, and the job a SIGWINCH once restored. */
  takesTerminal: boolean;
  /** The job's terminal modes, to put on cr's terminal (when it takes it over). */
  termios?: Uint8Array;
}

/** Check that the images can be restored with (or without) --shell-job here, before anything is created. */
export function prepareShellJob(images: Pick<ImageSet, "tree" | "files" | "tasks">, shellJob: boolean, detached: boolean, log: (msg: string) => void): ShellJob {
  const self = selfIds();
  const need = shellJobNeed(images);
  if (!shellJob) {
    if (need) throw new CrError("restore", `the images hold a job of an interactive shell (${need}): restore it with --shell-job, from the terminal to attach it to`);
    return { crPgid: self.pgid, foreground: 0, takesTerminal: false };
  }
  let terminal: string | undefined;
  if (images.files.files.some((f) => f.kind === "tty")) {
    const found = findTerminal((fd) => isatty(fd), self.ttyNr !== 0);
    if (found === null) {
      throw new CrError("restore", "--shell-job: cr has no terminal to attach the job to (none of its stdin, stdout, stderr is a terminal and it has no controlling terminal): run it from the terminal the job should use");
    }
    // Fail here rather than in the middle of opening the tree's files.
    try {
      closeSync(openSync(found, constants.O_RDWR | constants.O_NOCTTY));
    } catch (e) {
      throw new CrError("restore", `--shell-job: cannot open cr's terminal ${found}: ${(e as Error).message}`, { cause: e });
    }
    terminal = found;
  }
  const ext = images.tree.external;
  const takes = takesTerminal(ext, detached, self);
  const foreground = foregroundPgid(ext, detached, self);
  if (ext?.foreground !== undefined && !takes) {
    log(`the job was in the foreground of its terminal; left in the background (${detached ? "detached" : "cr is not the foreground of a terminal"})`);
  }
  log(`shell job: into session ${self.sid}${ext?.pgid !== undefined ? `, group ${self.pgid}` : ""}${terminal ? `, terminal ${terminal}` : ""}${foreground ? `, foreground group ${foreground}` : ""}`);
  return {
    crPgid: self.pgid, ...(terminal === undefined ? {} : { terminal }), foreground, takesTerminal: takes,
    ...(takes && ext?.termios ? { termios: ext.termios } : {}),
  };
}

/** Run `f` on a new description of cr's controlling terminal. */
function onCtty<T>(f: (fd: number) => T): T {
  const fd = openSync("/dev/tty", constants.O_RDWR | constants.O_NOCTTY);
  try {
    return f(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Put the job's terminal modes on cr's terminal; returns what undoes it (for
 * a restore that fails: the shell gets its terminal back as it was).
 */
export function takeTerminalModes(termios: Uint8Array): () => void {
  const saved = onCtty((fd) => {
    const old = native.getTermios(fd);
    native.setTermios(fd, termios);
    return old;
  });
  return () => {
    try {
      onCtty((fd) => native.setTermios(fd, saved));
    } catch {
      // The terminal is gone: nothing to give back.
    }
  };
}

const SIGSTOP = 19, SIGCONT = 18;
const stoppedStatus = (status: number) => (status & 0xff) === 0x7f;

/**
 * Wait for the restored root, in the foreground group `pgid` of cr's
 * terminal, as a shell waits for a job: when the job stops (Ctrl-Z), cr stops
 * too, so that the shell that runs cr sees its job stop and takes the
 * terminal back; when that shell continues cr (fg, or bg), cr continues the
 * job, giving it the terminal again if cr has it. Returns the wait status of
 * the root's end.
 */
export function waitForegroundJob(root: number, pgid: number): number {
  for (;;) {
    const { status } = native.wait(root, native.WUNTRACED);
    if (!stoppedStatus(status)) return status;
    native.kill(process.pid, SIGSTOP);
    // Continued.
    const self = selfIds();
    if (self.ttyNr !== 0 && self.tpgid === self.pgid) onCtty((fd) => native.setForeground(fd, pgid));
    native.kill(-pgid, SIGCONT);
  }
}

// Pure logic of --shell-job: what the dump sees outside the tree and which
// terminal fds it keeps, how restore orders sessions and groups with the
// outside ones, which terminal and foreground group it takes, and the checks
// of the records.
import { describe, expect, test } from "bun:test";
import { DEV_TTY, jobContext, terminalKind, terminalProblem, treeExternal, type JobContext, type TerminalFd } from "../../src/dump/shelljob.ts";
import type { DumpTask } from "../../src/dump/tree.ts";
import { orderTasks } from "../../src/restore/tree.ts";
import { findTerminal, foregroundPgid, shellJobNeed, takesTerminal } from "../../src/restore/shelljob.ts";
import { decodeImage, encodeImage, type FilesImage, type ImageSet, type TreeImage } from "../../src/images/index.ts";
import { CrError } from "../../src/errors.ts";

const PTS3 = (136 << 8) | 3;
const PTS4 = (136 << 8) | 4;

function task(pid: number, ppid: number, pgid: number, sid: number, state: DumpTask["state"] = "alive"): DumpTask {
  return { pid, ppid, pgid, sid, tids: [pid], state };
}

describe("jobContext (dump)", () => {
  test("a foreground job with its own group, under a shell outside the tree", () => {
    const job = jobContext([task(100, 50, 100, 50), task(101, 100, 100, 50)], { ttyNr: PTS3, tpgid: 100 }, true);
    expect(job).toEqual({ shellJob: true, external: { sid: 50, foreground: 100 }, ctty: PTS3 });
    expect(treeExternal(job)).toEqual({ sid: 50, foreground: 100 });
  });
  test("a job in the shell's group: the group is outside too, and is the foreground", () => {
    const job = jobContext([task(100, 50, 50, 50)], { ttyNr: PTS3, tpgid: 50 }, true);
    expect(job.external).toEqual({ sid: 50, pgid: 50, foreground: 50 });
  });
  test("a background job: the foreground is the shell's, not recorded", () => {
    const job = jobContext([task(100, 50, 100, 50)], { ttyNr: PTS3, tpgid: 50 }, true);
    expect(job.external).toEqual({ sid: 50 });
  });
  test("a group the tree leads is the foreground only if its leader is alive and in the session", () => {
    const tasks = [task(100, 50, 100, 50), task(101, 100, 101, 50, "zombie"), task(102, 100, 102, 102)];
    expect(jobContext(tasks, { ttyNr: PTS3, tpgid: 101 }, true).external?.foreground).toBeUndefined();
    expect(jobContext(tasks, { ttyNr: PTS3, tpgid: 102 }, true).external?.foreground).toBeUndefined();
  });
  test("no terminal: no foreground", () => {
    expect(jobContext([task(100, 50, 100, 50)], { ttyNr: 0, tpgid: -1 }, true)).toEqual({ shellJob: true, external: { sid: 50 }, ctty: 0 });
  });
  test("a tree that leads its session has nothing outside", () => {
    expect(jobContext([task(100, 50, 100, 100)], { ttyNr: PTS3, tpgid: 100 }, true)).toEqual({ shellJob: true, ctty: 0 });
  });
  test("without --shell-job the outside is seen but not recorded", () => {
    const job = jobContext([task(100, 50, 100, 50)], { ttyNr: PTS3, tpgid: 100 }, false);
    expect(job.external?.sid).toBe(50);
    expect(treeExternal(job)).toBeUndefined();
  });
});

describe("terminal fds (dump)", () => {
  const fd = (over: Partial<TerminalFd>): TerminalFd => ({ pid: 100, fd: 0, target: "/dev/pts/3", rdev: PTS3, holderTty: () => PTS3, ...over });
  const shellJob: JobContext = { shellJob: true, external: { sid: 50 }, ctty: PTS3 };

  test("which paths are terminals", () => {
    expect(terminalKind("/dev/pts/3")).toBe("terminal");
    expect(terminalKind("/dev/tty")).toBe("terminal");
    expect(terminalKind("/dev/ttyS0")).toBe("terminal");
    expect(terminalKind("/dev/console")).toBe("terminal");
    expect(terminalKind("/dev/ptmx")).toBe("master");
    expect(terminalKind("/dev/pts/ptmx")).toBe("master");
    expect(terminalKind("/dev/null")).toBeNull();
    expect(terminalKind("/dev/pts")).toBeNull();
  });
  test("the outside session's terminal, by device or as /dev/tty of a task of that session, with --shell-job", () => {
    expect(terminalProblem(shellJob, fd({}))).toBeNull();
    expect(terminalProblem(shellJob, fd({ target: "/dev/tty", rdev: DEV_TTY }))).toBeNull();
  });
  test("without --shell-job: a hint", () => {
    expect(terminalProblem({ ...shellJob, shellJob: false }, fd({}))).toEqual({
      why: "a terminal (use --shell-job to dump a job of an interactive shell)", hint: true,
    });
  });
  test("another terminal, /dev/tty of a task with another one, a master, a tree leading its session: refused", () => {
    expect(terminalProblem(shellJob, fd({ target: "/dev/pts/4", rdev: PTS4 }))?.hint).toBe(false);
    expect(terminalProblem(shellJob, fd({ target: "/dev/tty", rdev: DEV_TTY, holderTty: () => PTS4 }))?.hint).toBe(false);
    expect(terminalProblem(shellJob, fd({ target: "/dev/ptmx", rdev: (5 << 8) | 2 }))?.why).toContain("pseudo-terminal masters");
    expect(terminalProblem({ shellJob: true, ctty: 0 }, fd({}))?.why).toContain("leads its own session");
    expect(terminalProblem({ shellJob: true, external: { sid: 50 }, ctty: 0 }, fd({}))?.hint).toBe(false);
  });
});

function tree(tasks: [number, number, number, number][], external?: TreeImage["external"]): TreeImage {
  return {
    tasks: tasks.map(([pid, ppid, pgid, sid]) => ({ pid, ppid, pgid, sid, threads: [pid], state: "alive" as const })),
    ...(external ? { external } : {}),
  };
}

function refusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof CrError) return e.message;
    throw e;
  }
  throw new Error("not refused");
}

describe("orderTasks with ids outside the tree (restore)", () => {
  test("a root leading its own group leads a new one; its session is cr's", () => {
    const o = orderTasks(tree([[100, 50, 100, 50], [101, 100, 100, 50]], { sid: 50 }), 100, 7);
    // The root's sid (not its pid): inherited from cr, like the child's (0).
    expect(o.map((t) => [t.sid, t.pgid])).toEqual([[50, 100], [0, 0]]);
  });
  test("the outside group is cr's: the root inherits it, a task that went back to it joins it", () => {
    const o = orderTasks(tree([[100, 50, 50, 50], [101, 100, 101, 50], [102, 101, 50, 50]], { sid: 50, pgid: 50 }), 100, 7);
    expect(o.map((t) => t.pgid)).toEqual([0, 101, 7]);
  });
  test("a task in the root's outside group without --shell-job: refused with the hint", () => {
    const t = tree([[100, 50, 50, 50], [101, 100, 101, 50], [102, 101, 50, 50]]);
    expect(refusal(() => orderTasks(t, 100, 7))).toBe("the leader of its process group 50 is outside the dumped tree (dump with --shell-job)");
  });
  test("a task in another outside group, or a root in a group of a descendant: refused", () => {
    const other = tree([[100, 50, 100, 50], [101, 100, 60, 50]], { sid: 50 });
    expect(refusal(() => orderTasks(other, 100, 7))).toContain("outside the dumped tree (not supported yet)");
    const down = tree([[100, 50, 101, 50], [101, 100, 101, 50]], { sid: 50 });
    expect(refusal(() => orderTasks(down, 100, 7))).toContain("led by one of its descendants");
  });
});

describe("terminal and foreground (restore)", () => {
  test("cr's terminal: the first of stdin, stdout, stderr that is one, else /dev/tty, else none", () => {
    expect(findTerminal((fd) => fd === 1 || fd === 2, true)).toBe("/proc/self/fd/1");
    expect(findTerminal(() => false, true)).toBe("/dev/tty");
    expect(findTerminal(() => false, false)).toBeNull();
  });
  const self = { pgid: 9, sid: 8, ttyNr: PTS4, tpgid: 9 };
  test("a group of the tree that was the foreground becomes it, when cr is the foreground and stays the parent", () => {
    expect(foregroundPgid({ sid: 50, foreground: 100 }, false, self)).toBe(100);
    expect(foregroundPgid({ sid: 50, foreground: 100 }, true, self)).toBe(0);
    expect(foregroundPgid({ sid: 50, foreground: 100 }, false, { ...self, tpgid: 3 })).toBe(0);
    expect(foregroundPgid({ sid: 50, foreground: 100 }, false, { ...self, ttyNr: 0, tpgid: -1 })).toBe(0);
  });
  test("the outside group (now cr's) or no foreground: nothing to do", () => {
    expect(foregroundPgid({ sid: 50, pgid: 50, foreground: 50 }, false, self)).toBe(0);
    expect(foregroundPgid({ sid: 50 }, false, self)).toBe(0);
    expect(foregroundPgid(undefined, false, self)).toBe(0);
  });
  test("the job takes the terminal over (modes, SIGWINCH) when it was the foreground, in its own group or the outside one", () => {
    expect(takesTerminal({ sid: 50, foreground: 100 }, false, self)).toBe(true);
    expect(takesTerminal({ sid: 50, pgid: 50, foreground: 50 }, false, self)).toBe(true);
    expect(takesTerminal({ sid: 50, pgid: 50 }, false, self)).toBe(false);
    expect(takesTerminal({ sid: 50, foreground: 100 }, true, self)).toBe(false);
    expect(takesTerminal({ sid: 50, foreground: 100 }, false, { ...self, tpgid: 3 })).toBe(false);
  });
  test("what needs --shell-job is named", () => {
    const files = { files: [{ id: 1, kind: "tty" as const, path: "/dev/pts/3", flags: 2, pos: 0, tty: { ctty: true } }] };
    // Only the fds of the task images are looked at.
    const tasks = new Map([[100, { task: { pid: 100, fds: [{ fd: 0, fileId: 1, cloexec: false }] } }]]) as unknown as ImageSet["tasks"];
    expect(shellJobNeed({ tree: tree([[100, 50, 100, 50]], { sid: 50 }), files, tasks }))
      .toBe("the root's session leader 50 is outside the dumped tree, fd 0 of pid 100 is its terminal /dev/pts/3");
    expect(shellJobNeed({ tree: tree([[100, 50, 100, 50]]), files: { files: [] }, tasks: new Map() })).toBeNull();
  });
});

describe("records", () => {
  const decodeTree = (t: TreeImage) => decodeImage("tree", encodeImage("tree", t), "tree.cbor");
  const decodeFiles = (f: FilesImage) => decodeImage("files", encodeImage("files", f), "files.cbor");
  test("external ids as written", () => {
    const t = tree([[100, 50, 50, 50]], { sid: 50, pgid: 50, foreground: 50, termios: new Uint8Array(36).fill(7) });
    expect(decodeTree(t)).toEqual(t);
  });
  test("external ids that are not the root's, or not outside, or a foreground nobody leads", () => {
    expect(() => decodeTree(tree([[100, 50, 100, 50]], { sid: 60 }))).toThrow(/not the root's session/);
    expect(() => decodeTree(tree([[100, 50, 100, 100]], { sid: 100 }))).toThrow(/not a session outside the tree/);
    expect(() => decodeTree(tree([[100, 50, 50, 50]], { sid: 50 }))).toThrow(/external.pgid does not say so/);
    expect(() => decodeTree(tree([[100, 50, 100, 50]], { sid: 50, pgid: 100 }))).toThrow(/not a process group outside/);
    expect(() => decodeTree(tree([[100, 50, 100, 50]], { sid: 50, foreground: 77 }))).toThrow(/external.foreground 77/);
    expect(() => decodeTree(tree([[100, 50, 100, 50]], { sid: 50, termios: new Uint8Array(60) }))).toThrow(/external.termios: 60 bytes, expected 36/);
  });
  test("a tty needs its record", () => {
    expect(() => decodeFiles({ files: [{ id: 1, kind: "tty", path: "/dev/pts/3", flags: 2, pos: 0 }] })).toThrow(/tty without its record/);
  });
});

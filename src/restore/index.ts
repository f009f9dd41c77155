// `cr restore`: validate every image before anything is created, check the pid
// is free, build the plan, let libcr create the task, and wait until it either
// reports a failure (then it is killed and reaped: nothing half-built stays)
// or enters rt_sigreturn.
import { existsSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { resolve } from "node:path";
import { CrError } from "../errors.ts";
import * as native from "../native/index.ts";
import { RESTORE_GO, RESTORE_STEPS } from "../native/abi.ts";
import { parseMaps } from "../proc/maps.ts";
import { withStopSignalsHeld, type StopCheck } from "../stopsignals.ts";
import { parseStat } from "../proc/stat.ts";
import * as img from "../images/index.ts";
import { buildPlan, restorerHole, setPlanHole, zombiePlan, type Hole } from "./plan.ts";
import { buildTreeBuffer, orderTasks, type Foreground } from "./tree.ts";
import { closeAll, openSharedFiles, type SharedFds } from "./files.ts";
import { ghostUses } from "./ghost.ts";
import { prepareShellJob, takeTerminalModes, type ShellJob } from "./shelljob.ts";
import { injectSite } from "../inject-site.ts";
import { imagesLayout, type XstateLayout } from "../xstate.ts";
import { planThreads, threadDifference } from "./verify.ts";
import { faultPoint } from "../faults.ts";

const SIGSTOP = 19, SIGWINCH = 28;

export interface RestoreOptions {
  dir: string;
  detached: boolean;
  /** Attach a job of an interactive shell to cr's own session and terminal (see shelljob.ts). */
  shellJob: boolean;
  pidfile?: string;
  log: (msg: string) => void;
  /** Told, while the new tasks fill their memory, about how many bytes of their pages are in. */
  progress?: (doneBytes: number, totalBytes: number) => void;
}

const PAGE_SIZE = 4096;
const pagesOf = (p: img.PagemapImage) => p.entries.reduce((n, e) => n + e.pages * PAGE_SIZE, 0);

/**
 * Until every new task is ready (or one failed): how far they are in
 * filling their memory, from their resident size (an estimate: it counts
 * code and libraries mapped from files too, so it is capped at each task's
 * pages). Only with a progress callback: the plain restore just waits.
 */
function followFill(statusFd: number, rootPid: number, tasks: { pid: number; bytes: number }[], progress: (done: number, total: number) => void): void {
  const total = tasks.reduce((n, t) => n + t.bytes, 0);
  // Bounded: it ends when the status pipe says so; restoreStatus handles a task that never does.
  while (!native.restoreStatusReady(statusFd, 100, rootPid)) {
    let done = 0;
    for (const t of tasks) {
      try {
        const resident = Number(readFileSync(`/proc/${t.pid}/statm`, "utf8").split(" ")[1]) * PAGE_SIZE;
        done += Math.min(resident, t.bytes);
      } catch {
        // Not created yet, or gone: nothing of it counts.
      }
    }
    progress(done, total);
  }
}

/**
 * The images of `dir`, checked against the manifest but for the content of
 * the pages files: `checkPages` hashes those, and restore runs it while the
 * new tasks fill their memory from them (on another CPU), before any of
 * them may run.
 */
export function loadImages(dir: string): { set: img.ImageSet; checkPages: () => void } {
  img.checkImageDirSafe(dir);
  const { checkLater } = img.verifyManifest(dir, (name) => /^pages-\d+\.img$/.test(name));
  const set = img.loadImageSet(dir);
  if (set.inventory.arch !== "x86_64") throw new CrError("restore", `images are for ${set.inventory.arch}, this is x86_64`);
  if (set.inventory.pageSize !== 4096) throw new CrError("restore", `images use page size ${set.inventory.pageSize}, this machine 4096`);
  return { set, checkPages: checkLater };
}

/**
 * The XSAVE layouts of the dumping CPU and of this one (buildPlan refuses a
 * thread whose state does not fit this CPU, naming the feature, before any
 * task is created).
 */
function cpuLayouts(images: img.ImageSet, tasks: img.TaskImage[]): { image: XstateLayout; here: XstateLayout } {
  const here = native.cpuXstate();
  const image = imagesLayout(images.inventory.cpu, tasks[0]?.threads[0]?.xstate, here);
  if (typeof image === "string") throw new CrError("restore", `${image}: restore with the cr that dumped them, on a CPU like the dumping one`);
  return { image, here };
}

/**
 * Task `pid`, its threads `tids` seized at the go: out of the restorer's
 * area, the area unmapped, every thread's registers, mask and xstate read
 * back and compared with what its plan told the restorer (verify.ts). The
 * threads stay seized.
 */
function verifyTask(pid: number, tids: number[], vmas: img.VmaImage[], plan: Uint8Array, hole: Hole, here: XstateLayout): void {
  const back = native.unmapRemote(tids, injectSite(vmas, pid), hole.start, hole.len);
  const want = new Map(planThreads(plan).map((w) => [w.tid, w]));
  for (const got of back) {
    const diff = threadDifference(want.get(got.tid)!, got, here);
    if (diff !== null) throw new CrError("restore", `thread ${got.tid} did not come back as dumped: ${diff}`, { pid });
  }
}

/** Who holds `pid`, for the error message (a zombie is freed only when its parent reaps it). */
function pidHolder(pid: number): string {
  try {
    const st = parseStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
    if (st.state === "Z") return `a zombie (${st.comm}) not yet reaped by its parent ${st.ppid}`;
    return `${st.comm} (state ${st.state}, parent ${st.ppid})`;
  } catch {
    return "another process";
  }
}

/** Kill and reap every task of a restore that failed: nothing half-built stays. */
function killTree(pids: number[]): void {
  for (const pid of [...pids].reverse()) {
    try {
      native.kill(pid, 9);
    } catch {
      // Not created, or gone already.
    }
  }
  // The root is our child; its descendants come to us (child subreaper) as
  // their parents die.
  const left = new Set(pids);
  const deadline = Date.now() + 10_000;
  while (left.size > 0 && Date.now() < deadline) {
    for (const pid of left) {
      if (!existsSync(`/proc/${pid}`)) {
        left.delete(pid);
        continue;
      }
      try {
        // Never blocking: a task that takes long to die must not hang cr past the deadline.
        native.wait(pid, native.WNOHANG);
      } catch {
        // Not (yet) our child.
      }
    }
    if (left.size > 0) Bun.sleepSync(2);
  }
}

/**
 * --shell-job, a job that was in the foreground: cr's controlling terminal,
 * as one more shared fd above all others (so the indexes of the others stay).
 */
function foregroundFd(job: ShellJob, shared: SharedFds, minFd: number): Foreground | undefined {
  if (job.foreground === 0) return undefined;
  const O_RDWR = 2, O_NOCTTY = 0o400;
  const fd = native.openFile("/dev/tty", O_RDWR | O_NOCTTY, 0, Math.max(minFd, ...shared.fds.map((f) => f + 1)));
  shared.opened.push(fd);
  shared.fds.push(fd);
  return { pgid: job.foreground, shared: shared.fds.length - 1 };
}

/**
 * Restore the images of `opts.dir`. `foreground`: the process group of the
 * restored job that cr made the foreground of its terminal (--shell-job), 0
 * if none: cr then waits for the job like a shell (waitForegroundJob).
 */
export function restore(opts: RestoreOptions): { pid: number; foreground: number } {
  const t0 = performance.now();
  const { set: images, checkPages } = loadImages(opts.dir);
  faultPoint("restore:loaded");
  opts.log(`images checked against the manifest and loaded in ${(performance.now() - t0).toFixed(1)} ms`);
  const job = prepareShellJob(images, opts.shellJob, opts.detached, opts.log);
  // The job's terminal modes go on before the job exists, and back off if it never does.
  const undoModes = job.termios ? takeTerminalModes(job.termios) : undefined;
  let pid: number;
  try {
    ({ pid } = withStopSignalsHeld("restore", (check) => createTree(images, job, opts, check, checkPages)));
  } catch (e) {
    undoModes?.();
    throw e;
  }
  if (job.takesTerminal) {
    // A new terminal, maybe of another size: the job's foreground tasks look at it again (and redraw).
    const fg = images.tree.external?.foreground;
    for (const t of images.tree.tasks) {
      if (t.state !== "alive" || t.pgid !== fg) continue;
      try {
        native.kill(t.pid, SIGWINCH);
      } catch {
        // Gone already: its parent will see.
      }
    }
  }
  return { pid, foreground: job.foreground };
}

/**
 * `check` gives up on a stop signal while the tree can still be removed
 * whole; `checkPages` (see loadImages) runs while the tasks fill their memory.
 */
function createTree(images: img.ImageSet, job: ShellJob, opts: RestoreOptions, check: StopCheck, checkPages: () => void): { pid: number } {
  const rootPid = images.inventory.rootPid;
  const order = orderTasks(images.tree, rootPid, job.crPgid);
  for (const { task } of order) {
    for (const tid of task.threads) {
      const what = tid === task.pid ? "pid" : `thread id (of pid ${task.pid})`;
      if (existsSync(`/proc/${tid}`)) throw new CrError("restore", `${what} ${tid} is in use by ${pidHolder(tid)}`, { pid: tid, errno: 17 });
    }
  }
  native.setChildSubreaper();
  const live = order.filter((o) => o.task.state !== "zombie").map((o) => ({ o, ...images.tasks.get(o.task.pid)! }));
  const cpu = cpuLayouts(images, live.map((t) => t.task));
  const ids = new Set(live.flatMap((t) => t.task.fds.map((f) => f.fileId)));
  const serviceFdBase = Math.max(3, ...live.flatMap((t) => t.task.fds.map((f) => f.fd + 1)));
  const shmemIds = new Set(live.flatMap((t) => t.task.mm.vmas.flatMap((v) => (v.kind === "shmem" && v.shmemId !== undefined ? [v.shmemId] : []))));
  const shared = openSharedFiles(images.files, ids, shmemIds, opts.dir, serviceFdBase + 1, ghostUses(live.map((t) => t.task)), opts.log, job.terminal);
  const selfMaps = parseMaps(readFileSync("/proc/self/maps", "utf8"));
  let spawned: native.SpawnResult;
  let hole: Hole;
  let plans: Map<number, Uint8Array>;
  try {
    faultPoint("restore:files");
    const fg = foregroundFd(job, shared, serviceFdBase + 1);
    plans = new Map(live.map((t) => [t.o.task.pid, buildPlan({
      pid: t.o.task.pid, sid: t.o.sid, pgid: t.o.pgid, task: t.task, pagemap: t.pagemap, root: t.o.parent < 0,
      sharedIndex: shared.index, shmemIndex: shared.shmemIndex, ghostIndex: shared.ghostIndex, serviceFdBase, pagesPath: resolve(opts.dir, img.pagesFile(t.o.task.pid)), selfMaps,
      cpu,
    })]));
    const busy = [
      ...live.flatMap((t) => t.task.mm.vmas.map((v) => ({ start: v.start, end: v.end }))),
      ...selfMaps.map((m) => ({ start: m.start, end: m.end })),
    ];
    hole = restorerHole(busy, native.nativeBlobs().restorer.length, Math.max(...[...plans.values()].map((p) => p.length)),
      Math.max(...live.map((t) => t.task.threads.length)));
    for (const p of plans.values()) setPlanHole(p, hole);
    const tree = buildTreeBuffer(order.map((o) => ({
      pid: o.task.pid, parent: o.parent, zombie: o.task.state === "zombie", exitStatus: o.task.exitCode ?? 0,
      plan: plans.get(o.task.pid) ?? zombiePlan(o.task.pid, o.sid, o.pgid, serviceFdBase),
      epolls: images.epolls.get(o.task.pid) ?? [],
    })), shared.fds, serviceFdBase, fg);
    opts.log(`tree of ${order.length} task(s), ${shared.fds.length} shared fd(s), restorer hole at 0x${hole.start.toString(16)}`);
    const tSpawn = performance.now();
    spawned = native.restoreTree(tree, rootPid);
    opts.log(`tree created in ${(performance.now() - tSpawn).toFixed(1)} ms`);
  } finally {
    // The tasks have their own copies now (or there are no tasks).
    closeAll(shared.opened);
  }
  // Kill before letting go: a task released by the go pipe would run.
  const abandon = () => {
    killTree(order.map((o) => o.task.pid));
    native.closeFd(spawned.goFd);
  };
  let failure: ReturnType<typeof native.restoreStatus>;
  const tWait = performance.now();
  try {
    faultPoint("restore:spawned");
    checkPages();
    opts.log(`pages files checked against the manifest in ${(performance.now() - tWait).toFixed(1)} ms`);
    if (opts.progress) followFill(spawned.statusFd, rootPid, live.map((t) => ({ pid: t.o.task.pid, bytes: pagesOf(t.pagemap) })), opts.progress);
    failure = native.restoreStatus(spawned.statusFd, rootPid);
    opts.log(`tasks restored their memory and state in ${(performance.now() - tWait).toFixed(1)} ms`);
  } catch (e) {
    abandon();
    throw e;
  }
  if (failure) {
    abandon();
    const step = RESTORE_STEPS[failure.step] ?? `step ${failure.step}`;
    throw new CrError("restore", `restoring failed at ${step} (item ${failure.index}): ${native.errnoName(-failure.err)}`, {
      pid: failure.pid, errno: -failure.err,
    });
  }
  // Every task is ready and waits in the restorer. Its area there is dead
  // weight (and RWX) once it leaves: hold every thread first, so that none
  // runs (or forks, handing the area down) before its area is gone.
  const tidsOf = (t: (typeof live)[number]) => [t.o.task.pid, ...t.o.task.threads.filter((tid) => tid !== t.o.task.pid)];
  try {
    faultPoint("restore:ready");
    check("the tree was removed, nothing was restored");
    for (const t of live) {
      for (const tid of tidsOf(t)) {
        native.seize(tid);
        // Its filters are in: they must not apply to the clean-up cr injects.
        if ((t.task.seccompFilters ?? []).length > 0) native.suspendSeccomp(tid);
      }
    }
    faultPoint("restore:seized");
  } catch (e) {
    abandon();
    throw e;
  }
  // The whole tree goes at once (one byte per task, in one write; a task
  // that sees the pipe close without it, because cr died, kills itself).
  // Each task leaves its area and stops at its rt_sigreturn's exit, where
  // the area is unmapped from outside (like a tiny dump with -R) and every
  // thread's state is read back. Only once every thread of the tree came
  // back as dumped does any of them run its own code; before that, any
  // failure removes the whole tree (the images can be restored again).
  try {
    try {
      writeSync(spawned.goFd, Buffer.alloc(live.length, RESTORE_GO));
    } finally {
      native.closeFd(spawned.goFd);
    }
    faultPoint("restore:go");
    for (const t of live) verifyTask(t.o.task.pid, tidsOf(t), t.task.mm.vmas, plans.get(t.o.task.pid)!, hole, cpu.here);
  } catch (e) {
    killTree(order.map((o) => o.task.pid));
    throw e;
  }
  // The point of no return: every thread runs on; one that was in a
  // job-control stop at dump time goes straight into it (SIGSTOP with the detach).
  for (const t of live) {
    for (const tid of tidsOf(t)) {
      try {
        native.detach(tid, t.o.task.state === "stopped" ? SIGSTOP : 0);
      } catch {
        // Killed from outside meanwhile: its parent will see.
      }
    }
  }
  faultPoint("restore:cleaned");
  if (opts.pidfile) writeFileSync(opts.pidfile, `${rootPid}\n`);
  opts.log(`restored ${order.length} task(s), root ${rootPid}`);
  return { pid: rootPid };
}

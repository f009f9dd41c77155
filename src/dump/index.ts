// `cr dump`: freeze one task, collect everything needed to bring it back, write
// the images, and only when they are safely on disk kill the task (default) or
// let it run on (--leave-running). Any failure before that point cures and
// detaches the task, which then runs on exactly as it was.
import { closeSync, openSync, readFileSync, readlinkSync } from "node:fs";
import { release as release_ } from "node:os";
import { CrError } from "../errors.ts";
import * as native from "../native/index.ts";
import { parseMaps, parseSmaps } from "../proc/maps.ts";
import { parseStat } from "../proc/stat.ts";
import { CAP_CHECKPOINT_RESTORE, CAP_SYS_PTRACE, hasCap, parseStatus } from "../proc/status.ts";
import { parseLimits } from "../proc/limits.ts";
import { parseTimers } from "../proc/timers.ts";
import * as img from "../images/index.ts";
import { CR_VERSION } from "../version.ts";
import { freezeTree, type DumpTask } from "./tree.ts";
import { applySmaps, classifyVma, pagesToDump, PAGE, unreadableWithPages } from "./memory.ts";
import { injectSite } from "../inject-site.ts";
import { FileTable } from "./files.ts";
import { ShmemTable } from "./shmem.ts";
import { collectSeccomp } from "./seccomp.ts";
import { DEFAULT_GHOST_LIMIT, exeOf, GhostTable, mapGhosts } from "./ghost.ts";
import { JobTerminal, jobContext, treeExternal } from "./shelljob.ts";
import { orderTasks } from "../restore/tree.ts";
import { withStopSignalsHeld, type StopCheck } from "../stopsignals.ts";
import { checkSameNamespaces } from "./namespaces.ts";
import { layoutRecord } from "../xstate.ts";
import { faultPoint } from "../faults.ts";

const SIGCONT = 18, SIGSTOP = 19;
const NOT_DUMPED = "the dump is incomplete (no manifest) and the tree runs on as it was";

export interface DumpOptions {
  pid: number;
  dir: string;
  leaveRunning: boolean;
  shellJob: boolean;
  tcpEstablished: boolean;
  sync: boolean;
  /** Largest deleted file saved as a ghost, in bytes (default DEFAULT_GHOST_LIMIT). */
  ghostLimit?: number;
  log: (msg: string) => void;
  /** Told, while pages are copied, how many bytes of the pages known so far are in the images. */
  progress?: (doneBytes: number, totalBytes: number) => void;
}

export interface DumpResult {
  pid: number;
  tasks: number;
  pagesBytes: number;
  /** From the first seize to the task killed or resumed. */
  freezeMs: number;
  totalMs: number;
  /** The dumper's peak RSS (VmHWM). */
  peakRssKiB: number;
}

function peakRssKiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return Number(m?.[1] ?? 0);
}

export function dump(opts: DumpOptions): DumpResult {
  const undo = img.createImageDir(opts.dir);
  const stage = { imagesComplete: false };
  try {
    return withStopSignalsHeld("dump", (check) => dumpHeld(opts, check, stage));
  } catch (e) {
    // Before the point of no return (the manifest written), a failed dump
    // leaves no partial image set behind, and the tree runs on as it was.
    // After it, the images are the only copy of a tree that may be gone:
    // they are kept, whatever failed.
    if (!stage.imagesComplete) {
      undo();
      throw e;
    }
    const why = e instanceof Error ? e.message : String(e);
    throw new CrError("dump", `the images in ${opts.dir} are complete, but after they were written: ${why}`, {
      ...(e instanceof CrError && e.pid !== undefined ? { pid: e.pid } : {}), cause: e,
    });
  }
}

/**
 * dump(), with `check` called between steps to give up on a stop signal
 * (the tree then runs on as it was); `stage.imagesComplete` is set at the
 * point of no return.
 */
function dumpHeld(opts: DumpOptions, check: StopCheck, stage: { imagesComplete: boolean }): DumpResult {
  const t0 = performance.now();
  const tSeize = performance.now();
  const seized: number[] = [];
  // Tasks cr took out of a job-control stop to dump them: stopped again when let go.
  const woken: number[] = [];
  const release = (tids: number[]) => {
    // A stop signal also drops the SIGCONT cr sent, should it still be queued.
    for (const pid of woken.splice(0)) {
      try {
        native.kill(pid, SIGSTOP);
      } catch {
        // Gone.
      }
    }
    // Every injected change was cured by libcr before it returned, so
    // detaching is all that is left; a task that is gone has nothing to get back.
    for (const tid of tids) {
      try {
        native.detach(tid);
      } catch {
        // Gone.
      }
    }
  };
  const tasks = freezeTree(opts.pid, {
    seize: (tid) => {
      const stopped = seizeOrExplain(tid);
      seized.push(tid);
      return stopped;
    },
    wake: (pid, tids) => {
      native.kill(pid, SIGCONT);
      woken.push(pid);
      for (const tid of tids) native.retrap(tid);
    },
    release,
  });
  try {
    faultPoint("dump:frozen");
    const tFrozen = performance.now();
    opts.log(`froze ${seized.length} thread(s) of ${tasks.length} task(s) in ${(tFrozen - tSeize).toFixed(1)} ms`);
    const job = jobContext(tasks, parseStat(readFileSync(`/proc/${opts.pid}/stat`, "utf8")), opts.shellJob);
    const external = treeExternal(job);
    const tree: img.TreeImage = {
      tasks: tasks.map((t) => ({
        pid: t.pid, ppid: t.ppid, pgid: t.pgid, sid: t.sid, threads: t.tids, state: t.state,
        ...(t.exitStatus === undefined ? {} : { exitCode: t.exitStatus }),
      })),
      ...(external ? { external } : {}),
    };
    checkRestorable(tree, opts.pid);
    checkSameNamespaces(tasks.filter((t) => t.state !== "zombie").map((t) => t.pid));
    const shmem = new ShmemTable(opts.dir);
    const ghosts = new GhostTable(opts.dir, opts.ghostLimit ?? DEFAULT_GHOST_LIMIT);
    const terminal = new JobTerminal(job);
    const table = new FileTable(shmem, ghosts, terminal.entry);
    const names: string[] = [];
    // The pages files' digests, computed as they were written.
    const known = new Map<string, native.Digest>();
    let pagesBytes = 0;
    /** Pages in the images, of the pages of the tasks collected so far (progress). */
    const tally = { done: 0, total: 0 };
    // A pipeline: one task's pages go to its image (its parasite sends them,
    // libcr's splicer writes them) while this thread collects the next task
    // (the whole tree is frozen, any order will do).
    let inFlight: PagesCopy | undefined;
    try {
      for (const t of tasks) {
        if (t.state === "zombie") continue;
        check(NOT_DUMPED);
        faultPoint("dump:collect");
        const collected = collectTask(t, table, shmem, ghosts);
        const previous = inFlight;
        inFlight = undefined;
        tally.total += collected.pagesBytes;
        if (previous) finishCopy(previous, known, opts, tally);
        inFlight = startCopy(collected, opts);
        faultPoint("dump:pages");
        pagesBytes += collected.pagesBytes;
        names.push(img.taskFile(t.pid), img.pagemapFile(t.pid), img.pagesFile(t.pid));
      }
      const last = inFlight;
      inFlight = undefined;
      if (last) finishCopy(last, known, opts, tally);
      check(NOT_DUMPED);
    } finally {
      // Only after a failure: a page dump under way ends, and its task is cured, before the tree is let go.
      if (inFlight) {
        inFlight.job.abort();
        closeSync(inFlight.fd);
      }
    }
    const inventory: img.InventoryImage = {
      crVersion: CR_VERSION, arch: "x86_64", pageSize: PAGE, kernel: release_(), dumpTime: new Date().toISOString(),
      rootPid: opts.pid, options: { leaveRunning: opts.leaveRunning, shellJob: opts.shellJob, tcpEstablished: opts.tcpEstablished },
      cpu: layoutRecord(native.cpuXstate()),
    };
    if (external && terminal.termios) external.termios = terminal.termios;
    faultPoint("dump:images");
    writeImage(opts, img.FILES, img.encodeImage("files", table.image()));
    writeImage(opts, img.TREE, img.encodeImage("tree", tree));
    writeImage(opts, img.INVENTORY, img.encodeImage("inventory", inventory));
    const contentFiles = [...shmem.fileNames(), ...ghosts.fileNames()];
    for (const [name, digest] of [...shmem.digests, ...ghosts.digests]) known.set(name, digest);
    if (opts.sync) for (const name of contentFiles) img.syncFile(`${opts.dir}/${name}`);
    const tManifest = performance.now();
    img.writeManifest(opts.dir, [img.INVENTORY, img.TREE, img.FILES, ...names, ...contentFiles], { sync: opts.sync, known });
    stage.imagesComplete = true;
    opts.log(`manifest written in ${(performance.now() - tManifest).toFixed(1)} ms`);
    faultPoint("dump:manifest");
    if (opts.leaveRunning) {
      faultPoint("dump:let-go");
      release(seized.splice(0));
    } else {
      // Images are safe: the tree goes, children first so no parent sees a
      // child die while it still runs (all are frozen anyway). One that
      // cannot be killed does not stop the others.
      const survivors: string[] = [];
      for (const t of [...tasks].reverse()) {
        if (t.state === "zombie") continue;
        try {
          native.kill(t.pid, 9);
        } catch (e) {
          if (!(e instanceof CrError && e.errno === 3)) survivors.push(`${t.pid} (${e instanceof Error ? e.message : String(e)})`);
        }
      }
      woken.length = 0;
      faultPoint("dump:let-go");
      const killed = seized.splice(0);
      release(killed);
      collectTraced(killed);
      if (survivors.length > 0) throw new CrError("dump", `could not kill task(s) ${survivors.join(", ")}: they run on, detached`);
    }
    const t1 = performance.now();
    return { pid: opts.pid, tasks: tasks.length, pagesBytes, freezeMs: t1 - tSeize, totalMs: t1 - t0, peakRssKiB: peakRssKiB() };
  } catch (e) {
    release(seized);
    throw e;
  }
}

/**
 * Take note, as their tracer, of the exit of every thread cr killed: until
 * the tracer has, the kernel does not tell the real parent, which cannot
 * reap it (a program calling dump() and living on would leave zombies that
 * hold the pids a restore needs). Bounded: killed threads exit at once; one
 * that does not within 5 s is left to the kernel.
 */
function collectTraced(tids: number[]): void {
  const left = new Set(tids);
  const deadline = Date.now() + 5_000;
  while (left.size > 0 && Date.now() < deadline) {
    for (const tid of left) {
      try {
        if (native.wait(tid, native.WNOHANG).pid === tid) left.delete(tid);
      } catch {
        // ECHILD: not ours to wait for (already detached, or gone).
        left.delete(tid);
      }
    }
    if (left.size > 0) Bun.sleepSync(1);
  }
}

/** Refuse now, with the tree running on, sessions and groups restore could not re-create. */
function checkRestorable(tree: img.TreeImage, rootPid: number): void {
  try {
    // cr's own group stands for the one restore will have: only the checks matter here.
    orderTasks(tree, rootPid, process.pid);
  } catch (e) {
    if (!(e instanceof CrError)) throw e;
    throw new CrError("dump", e.message, { ...(e.pid === undefined ? {} : { pid: e.pid }), cause: e });
  }
}

/**
 * Why this process may not trace others, when that is so: cr's privileges
 * (root, or CAP_SYS_PTRACE and CAP_CHECKPOINT_RESTORE) or Yama's
 * kernel.yama.ptrace_scope.
 */
export function ptraceRefusal(self: { euid: number; capEff: bigint }, ptraceScope: number | undefined): string | null {
  const sysPtrace = hasCap(self.capEff, CAP_SYS_PTRACE), checkpoint = hasCap(self.capEff, CAP_CHECKPOINT_RESTORE);
  if (ptraceScope === 3) return "kernel.yama.ptrace_scope is 3: no process may trace another until reboot";
  if (ptraceScope === 2 && !sysPtrace) return "kernel.yama.ptrace_scope is 2: only a process with CAP_SYS_PTRACE may trace; run cr as root";
  if (self.euid !== 0 && !(sysPtrace && checkpoint)) {
    return `cr runs as uid ${self.euid} without ${[sysPtrace ? "" : "CAP_SYS_PTRACE", checkpoint ? "" : "CAP_CHECKPOINT_RESTORE"].filter(Boolean).join(" and ")}: run it as root, or give it both capabilities`;
  }
  return null;
}

/** native.seize, with the usual reasons for EPERM spelled out: cr's privileges, ptrace_scope, another tracer (a debugger, strace). */
function seizeOrExplain(tid: number): boolean {
  try {
    return native.seize(tid);
  } catch (e) {
    if (!(e instanceof CrError) || e.errno !== 1) throw e;
    const self = parseStatus(readFileSync("/proc/self/status", "utf8"));
    let scope: number | undefined;
    try {
      scope = Number(readFileSync("/proc/sys/kernel/yama/ptrace_scope", "utf8").trim());
    } catch {
      // No Yama.
    }
    const why = ptraceRefusal({ euid: self.uid[1] ?? 0, capEff: self.capEff }, scope);
    if (why !== null) throw new CrError("dump", `cannot trace thread ${tid}: ${why}`, { pid: tid, errno: 1, cause: e });
    let tracer = 0;
    try {
      tracer = Number(/TracerPid:\s+(\d+)/.exec(readFileSync(`/proc/${tid}/status`, "utf8"))?.[1] ?? 0);
    } catch {
      throw e;
    }
    if (tracer === 0) throw e;
    let comm = "";
    try {
      comm = ` (${readFileSync(`/proc/${tracer}/comm`, "utf8").trim()})`;
    } catch {
      // Gone meanwhile: the pid says enough.
    }
    throw new CrError("dump", `thread ${tid} is already traced by pid ${tracer}${comm}: detach it first`, { pid: tid, errno: 16, cause: e });
  }
}

function writeImage(opts: DumpOptions, name: string, bytes: Uint8Array): void {
  img.writeImageFile(opts.dir, name, bytes, { sync: opts.sync });
}

/** What a frozen task's images hold, collected (the parasite has been and gone), before its pages are copied. */
interface CollectedTask {
  pid: number;
  task: img.TaskImage;
  pagemap: img.PagemapImage;
  runs: { addr: number; len: number }[];
  /** The VMAs without PROT_READ that hold some of the runs. */
  unreadable: { addr: number; len: number; prot: number }[];
  pagesBytes: number;
  /** Where libcr injects syscalls into the task. */
  /** Where libcr runs code in the task (inject-site.ts). */
  site: Uint8Array;
}

/** A task's page dump under way (its parasite and libcr's splicer), its metadata already written. */
interface PagesCopy {
  pid: number;
  fd: number;
  job: native.PagesJob;
  expected: number;
  started: number;
  summary: string;
}

/** Everything of frozen task `frozen` but its pages. */
function collectTask(frozen: DumpTask, table: FileTable, shmem: ShmemTable, ghosts: GhostTable): CollectedTask {
  const { pid, tids } = frozen;
  const proc = (rel: string) => readFileSync(`/proc/${pid}/${rel}`, "utf8");
  const stat = parseStat(proc("stat"));
  const status = parseStatus(proc("status"));
  // Before anything is injected: the task's filters must not apply to the parasite.
  const seccomp = status.seccomp !== 0 || tids.length > 1 ? collectSeccomp(pid, tids, status.seccomp) : undefined;
  const maps = parseMaps(proc("maps"));
  // Without smaps' VmFlags and protection keys until the pages are being copied (see applySmaps).
  const classified = maps.map((m) => classifyVma(m, undefined, pid));
  const fds = table.collect(pid);
  const exe = exeOf(ghosts, pid);
  mapGhosts(ghosts, pid, maps, classified);
  const vmas = classified.filter((v) => v.kind !== "vsyscall");
  for (const v of vmas) {
    if (v.kind === "shmem") shmem.add(v.shmemId!, v.path!, `/proc/${pid}/map_files/${v.start.toString(16)}-${v.end.toString(16)}`, pid);
  }

  // Registers first: the parasite's injected syscalls leave them as they were, but read them untouched.
  const raw = tids.map((tid) => native.readThread(tid));
  const timers = parseTimers(proc("timers"));
  const site = injectSite(vmas, pid);
  const parasite = native.runParasite(tids, site, timers.map((t) => t.id));
  // The SIGCONT that lifted a job-control stop is cr's, not the task's.
  const sharedPending = native.peekPendingSignals(pid, true).filter((si) => frozen.state !== "stopped" || si[0] !== SIGCONT);
  const threads: img.TaskImage["threads"] = raw.map((r, i) => ({
    tid: r.tid,
    comm: readFileSync(`/proc/${pid}/task/${r.tid}/comm`, "utf8").replace(/\n$/, ""),
    regs: r.regs, xstate: r.xstate, sigmask: r.sigmask, rseq: r.rseq,
    tidAddress: parasite.threads[i]!.tidAddress, robustList: r.robustList, altstack: parasite.threads[i]!.altstack,
    ...(parasite.threads[i]!.pdeathSig !== 0 ? { pdeathSig: parasite.threads[i]!.pdeathSig } : {}),
    ...(seccomp && seccomp.chains[i]!.length > 0 ? { seccomp: seccomp.chains[i]! } : {}),
    pending: native.peekPendingSignals(r.tid, false),
  }));

  // Pages last: the parasite may have touched the page it ran from.
  const runs = pagesToDump(pid, vmas);
  let offset = 0;
  const entries = runs.map((r) => {
    const e = { start: r.addr, pages: r.len / PAGE, offset };
    offset += r.len;
    return e;
  });
  const task: img.TaskImage = {
    pid,
    comm: stat.comm,
    ...exe,
    cwd: readlinkSync(`/proc/${pid}/cwd`),
    root: readlinkSync(`/proc/${pid}/root`),
    umask: status.umask ?? 0o022,
    personality: parseInt(proc("personality").trim(), 16),
    creds: {
      uid: status.uid, gid: status.gid, groups: status.groups,
      capInh: status.capInh, capPrm: status.capPrm, capEff: status.capEff, capBnd: status.capBnd, capAmb: status.capAmb,
      noNewPrivs: status.noNewPrivs !== 0,
      dumpable: parasite.dumpable,
    },
    rlimits: parseLimits(proc("limits")).map((l) => ({ resource: l.resource, cur: l.soft, max: l.hard })),
    // Only the signals not at their default (SIG_DFL, no flags, no mask): most are.
    sigactions: parasite.sigactions.filter((s) => s.handler !== 0 || s.flags !== 0 || s.mask !== 0n),
    itimers: { real: parasite.itimers[0]!, virtual: parasite.itimers[1]!, prof: parasite.itimers[2]! },
    posixTimers: timers.map((t, i) => ({ ...t, ...parasite.posixTimers[i]! })),
    sharedPending,
    ...(parasite.xcompPerm !== 0n ? { xcompPerm: parasite.xcompPerm } : {}),
    ...(seccomp ? { seccompFilters: seccomp.filters } : {}),
    threads,
    mm: {
      vmas,
      brk: parasite.brk, startBrk: stat.startBrk, startCode: stat.startCode, endCode: stat.endCode,
      startData: stat.startData, endData: stat.endData, startStack: stat.startStack,
      argStart: stat.argStart, argEnd: stat.argEnd, envStart: stat.envStart, envEnd: stat.envEnd,
      auxv: new Uint8Array(readFileSync(`/proc/${pid}/auxv`)),
    },
    fds,
  };

  return { pid, task, pagemap: { entries }, runs, unreadable: unreadableWithPages(vmas, runs), pagesBytes: offset, site };
}

/** Start dumping (and hashing) `c`'s pages, then write its metadata images meanwhile. */
function startCopy(c: CollectedTask, opts: DumpOptions): PagesCopy {
  const pagesName = img.pagesFile(c.pid);
  const fd = openSync(`${opts.dir}/${pagesName}`, "w", 0o600);
  const started = performance.now();
  let job: native.PagesJob;
  try {
    job = native.startDumpPages(c.pid, c.site, c.runs, c.unreadable, c.task.threads[0]!.rseq, fd);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  const copy: PagesCopy = {
    pid: c.pid, fd, job, expected: c.pagesBytes, started,
    summary: `${c.task.threads.length} thread(s), ${c.task.mm.vmas.length} VMAs, ${c.runs.length} page runs, ${c.task.fds.length} fds`,
  };
  try {
    applySmaps(c.task.mm.vmas, parseSmaps(readFileSync(`/proc/${c.pid}/smaps`, "utf8")));
    writeImage(opts, img.taskFile(c.pid), img.encodeImage("task", c.task));
    writeImage(opts, img.pagemapFile(c.pid), img.encodeImage("pagemap", c.pagemap));
  } catch (e) {
    job.abort();
    closeSync(fd);
    throw e;
  }
  return copy;
}

/**
 * Report a page copy's progress until its pages are all in the image (or it
 * stops moving: finish() then says why). Only with a progress callback: the
 * plain dump waits in finish() alone.
 */
function followCopy(copy: PagesCopy, tally: { done: number; total: number }, progress: (done: number, total: number) => void): void {
  let last = -1, since = Date.now();
  // Bounded: it ends when the copy is done or has not moved for a second.
  for (;;) {
    const w = copy.job.written();
    if (w >= copy.expected) return;
    if (w !== last) {
      last = w;
      since = Date.now();
      progress(tally.done + w, tally.total);
    } else if (Date.now() - since > 1_000) {
      return;
    }
    Bun.sleepSync(20);
  }
}

/** Wait for a task's page dump (which cures the task); its pages file's size and hash go to `known` for the manifest. */
function finishCopy(copy: PagesCopy, known: Map<string, native.Digest>, opts: DumpOptions, tally: { done: number; total: number }): void {
  let pages: native.Digest;
  try {
    if (opts.progress) followCopy(copy, tally, opts.progress);
    pages = copy.job.finish();
  } finally {
    closeSync(copy.fd);
  }
  const pagesName = img.pagesFile(copy.pid);
  if (pages.bytes !== copy.expected) throw new CrError("dump", `wrote ${pages.bytes} bytes of pages, expected ${copy.expected}`, { pid: copy.pid });
  if (opts.sync) img.syncFile(`${opts.dir}/${pagesName}`);
  known.set(pagesName, pages);
  tally.done += pages.bytes;
  opts.progress?.(tally.done, tally.total);
  opts.log(`dumped ${copy.pid}: ${copy.summary}, ${(pages.bytes / 1048576).toFixed(1)} MiB of pages in ${(performance.now() - copy.started).toFixed(1)} ms`);
}

// `cr dump`: freeze one task, collect everything needed to bring it back, write
// the images, and only when they are safely on disk kill the task (default) or
// let it run on (--leave-running). Any failure before that point cures and
// detaches the task, which then runs on exactly as it was.
import { closeSync, openSync, readFileSync, readlinkSync } from "node:fs";
import { release as release_ } from "node:os";
import { CrError } from "../errors.ts";
import * as native from "../native/index.ts";
import { parseMaps, parseSmapsVmFlags } from "../proc/maps.ts";
import { parseStat } from "../proc/stat.ts";
import { parseStatus } from "../proc/status.ts";
import { parseLimits } from "../proc/limits.ts";
import * as img from "../images/index.ts";
import { CR_VERSION } from "../version.ts";
import { freezeTree } from "./tree.ts";
import { classifyVma, pagesToDump, PAGE, type DumpVma } from "./memory.ts";
import { syscallSite } from "../syscall-site.ts";
import { FileTable } from "./files.ts";
import { ShmemTable } from "./shmem.ts";

export interface DumpOptions {
  pid: number;
  dir: string;
  leaveRunning: boolean;
  shellJob: boolean;
  tcpEstablished: boolean;
  sync: boolean;
  log: (msg: string) => void;
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
  const t0 = performance.now();
  img.createImageDir(opts.dir);
  const tSeize = performance.now();
  const seized: number[] = [];
  const release = (tids: number[]) => {
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
  const tasks = freezeTree(opts.pid, (tid) => {
    native.seize(tid);
    seized.push(tid);
  }, release);
  try {
    const tFrozen = performance.now();
    opts.log(`froze ${seized.length} thread(s) of ${tasks.length} task(s) in ${(tFrozen - tSeize).toFixed(1)} ms`);
    const shmem = new ShmemTable(opts.dir);
    const table = new FileTable(shmem);
    const names: string[] = [];
    // The pages files' digests, computed as they were written.
    const known = new Map<string, native.Digest>();
    let pagesBytes = 0;
    for (const t of tasks) {
      if (t.state !== "alive") continue;
      const pages = writeTaskImages(t.pid, table, shmem, opts);
      known.set(img.pagesFile(t.pid), pages);
      pagesBytes += pages.bytes;
      names.push(img.taskFile(t.pid), img.pagemapFile(t.pid), img.pagesFile(t.pid));
    }
    const tree: img.TreeImage = {
      tasks: tasks.map((t) => ({
        pid: t.pid, ppid: t.ppid, pgid: t.pgid, sid: t.sid, threads: t.tids, state: t.state,
        ...(t.exitStatus === undefined ? {} : { exitCode: t.exitStatus }),
      })),
    };
    const inventory: img.InventoryImage = {
      crVersion: CR_VERSION, arch: "x86_64", pageSize: PAGE, kernel: release_(), dumpTime: new Date().toISOString(),
      rootPid: opts.pid, options: { leaveRunning: opts.leaveRunning, shellJob: opts.shellJob, tcpEstablished: opts.tcpEstablished },
    };
    writeImage(opts, img.FILES, img.encodeImage("files", table.image()));
    writeImage(opts, img.TREE, img.encodeImage("tree", tree));
    writeImage(opts, img.INVENTORY, img.encodeImage("inventory", inventory));
    if (opts.sync) for (const name of shmem.fileNames()) img.syncFile(`${opts.dir}/${name}`);
    const tManifest = performance.now();
    img.writeManifest(opts.dir, [img.INVENTORY, img.TREE, img.FILES, ...names, ...shmem.fileNames()], { sync: opts.sync, known });
    opts.log(`manifest written in ${(performance.now() - tManifest).toFixed(1)} ms`);
    if (opts.leaveRunning) {
      release(seized.splice(0));
    } else {
      // Images are safe: the tree goes, children first so no parent sees a
      // child die while it still runs (all are frozen anyway).
      for (const t of [...tasks].reverse()) {
        if (t.state === "alive") native.kill(t.pid, 9);
      }
      release(seized.splice(0));
    }
    const t1 = performance.now();
    return { pid: opts.pid, tasks: tasks.length, pagesBytes, freezeMs: t1 - tSeize, totalMs: t1 - t0, peakRssKiB: peakRssKiB() };
  } catch (e) {
    release(seized);
    throw e;
  }
}

function writeImage(opts: DumpOptions, name: string, bytes: Uint8Array): void {
  img.writeImageFile(opts.dir, name, bytes, { sync: opts.sync });
}

/** Write the images of task `pid`; returns its pages file's size and hash. */
function writeTaskImages(pid: number, table: FileTable, shmem: ShmemTable, opts: DumpOptions): native.Digest {
  const proc = (rel: string) => readFileSync(`/proc/${pid}/${rel}`, "utf8");
  const stat = parseStat(proc("stat"));
  const status = parseStatus(proc("status"));
  const maps = parseMaps(proc("maps"));
  const classify = (vmFlags: Map<number, string[]>) =>
    maps.map((m) => classifyVma(m, vmFlags.get(m.start), pid)).filter((v) => v.kind !== "vsyscall");
  // Without smaps' VmFlags for now: they only tell which mappings grow down,
  // and reading them walks every page (~10 ms per GiB), so that waits until
  // the pages are being copied.
  let vmas = classify(new Map());
  const fds = table.collect(pid);
  for (const v of vmas) {
    if (v.kind === "shmem") shmem.add(v.shmemId!, v.path!, `/proc/${pid}/map_files/${v.start.toString(16)}-${v.end.toString(16)}`, pid);
  }

  const thread = native.readThread(pid);
  const parasite = native.runParasite(pid, syscallSite(vmas, pid));
  const sharedPending = native.peekPendingSignals(pid, true);
  const threadPending = native.peekPendingSignals(pid, false);

  // Pages last: the parasite may have touched the page it ran from. They are
  // copied on libcr's threads while this one reads smaps and writes the
  // metadata images (~10 ms per GiB of the task's memory, mostly smaps); that
  // is time saved with a spare CPU, a wash with two CPUs both busy copying.
  const runs = pagesToDump(pid, vmas);
  const pagesName = img.pagesFile(pid);
  const fd = openSync(`${opts.dir}/${pagesName}`, "w", 0o600);
  const tPages = performance.now();
  let job: native.PagesJob;
  try {
    job = native.startDumpPages(pid, runs, fd, { hash: true });
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  let pages: native.Digest;
  try {
    vmas = classify(parseSmapsVmFlags(proc("smaps")));
    writeTaskMetadata(pid, { stat, status, vmas, fds, thread, parasite, sharedPending, threadPending, runs }, opts);
    pages = job.finish();
  } catch (e) {
    job.abort();
    throw e;
  } finally {
    closeSync(fd);
  }
  const pagesMs = performance.now() - tPages;
  const expected = runs.reduce((a, r) => a + r.len, 0);
  if (pages.bytes !== expected) throw new CrError("dump", `wrote ${pages.bytes} bytes of pages, expected ${expected}`, { pid });
  if (opts.sync) img.syncFile(`${opts.dir}/${pagesName}`);
  opts.log(`dumped ${pid}: ${vmas.length} VMAs, ${runs.length} page runs, ${(pages.bytes / 1048576).toFixed(1)} MiB of pages in ${pagesMs.toFixed(1)} ms, ${fds.length} fds`);
  return pages;
}

/** task-PID.cbor and pagemap-PID.cbor, from what was collected while the task is frozen. */
function writeTaskMetadata(pid: number, c: {
  stat: ReturnType<typeof parseStat>; status: ReturnType<typeof parseStatus>; vmas: DumpVma[];
  fds: img.TaskImage["fds"]; thread: native.ThreadRaw; parasite: native.ParasiteResult;
  sharedPending: Uint8Array[]; threadPending: Uint8Array[]; runs: { addr: number; len: number }[];
}, opts: DumpOptions): void {
  const proc = (rel: string) => readFileSync(`/proc/${pid}/${rel}`, "utf8");
  const { stat, status, vmas, fds, thread, parasite, sharedPending, threadPending } = c;
  let offset = 0;
  const entries = c.runs.map((r) => {
    const e = { start: r.addr, pages: r.len / PAGE, offset };
    offset += r.len;
    return e;
  });

  const task: img.TaskImage = {
    pid,
    comm: stat.comm,
    exe: readlinkSync(`/proc/${pid}/exe`),
    cwd: readlinkSync(`/proc/${pid}/cwd`),
    root: readlinkSync(`/proc/${pid}/root`),
    umask: status.umask ?? 0o022,
    personality: parseInt(proc("personality").trim(), 16),
    creds: {
      uid: status.uid, gid: status.gid, groups: status.groups,
      capInh: status.capInh, capPrm: status.capPrm, capEff: status.capEff, capBnd: status.capBnd, capAmb: status.capAmb,
      noNewPrivs: status.noNewPrivs !== 0,
    },
    rlimits: parseLimits(proc("limits")).map((l) => ({ resource: l.resource, cur: l.soft, max: l.hard })),
    sigactions: parasite.sigactions,
    itimers: { real: parasite.itimers[0]!, virtual: parasite.itimers[1]!, prof: parasite.itimers[2]! },
    sharedPending,
    threads: [{
      tid: pid, regs: thread.regs, xstate: thread.xstate, sigmask: thread.sigmask, rseq: thread.rseq,
      tidAddress: parasite.tidAddress, robustList: thread.robustList, altstack: parasite.altstack, pending: threadPending,
    }],
    mm: {
      vmas,
      brk: parasite.brk, startBrk: stat.startBrk, startCode: stat.startCode, endCode: stat.endCode,
      startData: stat.startData, endData: stat.endData, startStack: stat.startStack,
      argStart: stat.argStart, argEnd: stat.argEnd, envStart: stat.envStart, envEnd: stat.envEnd,
      auxv: new Uint8Array(readFileSync(`/proc/${pid}/auxv`)),
    },
    fds,
  };
  writeImage(opts, img.taskFile(pid), img.encodeImage("task", task));
  writeImage(opts, img.pagemapFile(pid), img.encodeImage("pagemap", { entries }));
}

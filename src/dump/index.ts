// `cr dump`: freeze one task, collect everything needed to bring it back, write
// the images, and only when they are safely on disk kill the task (default) or
// let it run on (--leave-running). Any failure before that point cures and
// detaches the task, which then runs on exactly as it was.
import { closeSync, openSync, readFileSync, readlinkSync } from "node:fs";
import { release } from "node:os";
import { CrError } from "../errors.ts";
import * as native from "../native/index.ts";
import { parseMaps, parseSmapsVmFlags } from "../proc/maps.ts";
import { parseStat } from "../proc/stat.ts";
import { parseStatus } from "../proc/status.ts";
import { parseLimits } from "../proc/limits.ts";
import * as img from "../images/index.ts";
import { CR_VERSION } from "../version.ts";
import { collectTarget } from "./tree.ts";
import { classifyVma, pagesToDump, PAGE } from "./memory.ts";
import { syscallSite } from "../syscall-site.ts";
import { collectFiles } from "./files.ts";

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
  const target = collectTarget(opts.pid);
  img.createImageDir(opts.dir);
  const seized: number[] = [];
  const tSeize = performance.now();
  try {
    for (const tid of target.tids) {
      native.seize(tid);
      seized.push(tid);
    }
    const tFrozen = performance.now();
    opts.log(`froze ${seized.length} thread(s) of ${target.pid} in ${(tFrozen - tSeize).toFixed(1)} ms`);
    const pagesBytes = writeTaskImages(target.pid, target, opts);
    if (opts.leaveRunning) {
      for (const tid of seized.splice(0)) native.detach(tid);
    } else {
      native.kill(target.pid, 9);
      for (const tid of seized.splice(0)) {
        try {
          native.detach(tid);
        } catch {
          // A killed task may already be gone from ptrace's view.
        }
      }
    }
    const t1 = performance.now();
    return { pid: target.pid, pagesBytes, freezeMs: t1 - tSeize, totalMs: t1 - t0, peakRssKiB: peakRssKiB() };
  } catch (e) {
    // Leave the task running as it was: every injected change was cured by
    // libcr before it returned, so detaching is all that is left.
    for (const tid of seized) {
      try {
        native.detach(tid);
      } catch {
        // The task is gone; nothing to give back.
      }
    }
    throw e;
  }
}

function writeTaskImages(pid: number, target: ReturnType<typeof collectTarget>, opts: DumpOptions): number {
  const proc = (rel: string) => readFileSync(`/proc/${pid}/${rel}`, "utf8");
  const stat = parseStat(proc("stat"));
  const status = parseStatus(proc("status"));
  const maps = parseMaps(proc("maps"));
  const vmFlags = parseSmapsVmFlags(proc("smaps"));
  const vmas = maps.map((m) => classifyVma(m, vmFlags.get(m.start), pid)).filter((v) => v.kind !== "vsyscall");
  const { files, fds } = collectFiles(pid, 1);

  const thread = native.readThread(pid);
  const parasite = native.runParasite(pid, syscallSite(vmas, pid));
  const sharedPending = native.peekPendingSignals(pid, true);
  const threadPending = native.peekPendingSignals(pid, false);

  // Pages last: the parasite may have touched the page it ran from.
  const runs = pagesToDump(pid, vmas);
  const pagesName = img.pagesFile(pid);
  const fd = openSync(`${opts.dir}/${pagesName}`, "w", 0o600);
  let written: number;
  try {
    written = native.dumpPages(pid, runs, fd);
  } finally {
    closeSync(fd);
  }
  const expected = runs.reduce((a, r) => a + r.len, 0);
  if (written !== expected) throw new CrError("dump", `wrote ${written} bytes of pages, expected ${expected}`, { pid });
  let offset = 0;
  const entries = runs.map((r) => {
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
  const tree: img.TreeImage = {
    tasks: [{ pid, ppid: target.ppid, pgid: target.pgid, sid: target.sid, threads: target.tids, state: "alive" }],
  };
  const inventory: img.InventoryImage = {
    crVersion: CR_VERSION, arch: "x86_64", pageSize: PAGE, kernel: release(), dumpTime: new Date().toISOString(),
    rootPid: pid, options: { leaveRunning: opts.leaveRunning, shellJob: opts.shellJob, tcpEstablished: opts.tcpEstablished },
  };
  const write = (name: string, bytes: Uint8Array) => img.writeImageFile(opts.dir, name, bytes, { sync: opts.sync });
  write(img.taskFile(pid), img.encodeImage("task", task));
  write(img.pagemapFile(pid), img.encodeImage("pagemap", { entries }));
  write(img.FILES, img.encodeImage("files", { files }));
  write(img.TREE, img.encodeImage("tree", tree));
  write(img.INVENTORY, img.encodeImage("inventory", inventory));
  if (opts.sync) img.syncFile(`${opts.dir}/${pagesName}`);
  img.writeManifest(opts.dir, [img.INVENTORY, img.TREE, img.FILES, img.taskFile(pid), img.pagemapFile(pid), pagesName], { sync: opts.sync });
  opts.log(`dumped ${pid}: ${vmas.length} VMAs, ${runs.length} page runs, ${(written / 1048576).toFixed(1)} MiB of pages, ${fds.length} fds`);
  return written;
}

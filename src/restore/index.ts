// `cr restore`: validate every image before anything is created, check the pid
// is free, build the plan, let libcr create the task, and wait until it either
// reports a failure (then it is killed and reaped: nothing half-built stays)
// or enters rt_sigreturn.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { CrError } from "../errors.ts";
import * as native from "../native/index.ts";
import { RESTORE_STEPS } from "../native/abi.ts";
import { parseMaps } from "../proc/maps.ts";
import { parseStat } from "../proc/stat.ts";
import * as img from "../images/index.ts";
import { buildPlan } from "./plan.ts";
import { syscallSite } from "../syscall-site.ts";

export interface RestoreOptions {
  dir: string;
  detached: boolean;
  pidfile?: string;
  log: (msg: string) => void;
}

export interface LoadedImages {
  inventory: img.InventoryImage;
  tree: img.TreeImage;
  files: img.FilesImage;
  tasks: Map<number, { task: img.TaskImage; pagemap: img.PagemapImage }>;
}

export function loadImages(dir: string): LoadedImages {
  img.checkImageDirSafe(dir);
  img.verifyManifest(dir);
  const read = <K extends img.ImageKind>(kind: K, name: string) => img.decodeImage(kind, img.readImageFile(dir, name), name);
  const inventory = read("inventory", img.INVENTORY);
  if (inventory.arch !== "x86_64") throw new CrError("restore", `images are for ${inventory.arch}, this is x86_64`);
  if (inventory.pageSize !== 4096) throw new CrError("restore", `images use page size ${inventory.pageSize}, this machine 4096`);
  const tree = read("tree", img.TREE);
  const files = read("files", img.FILES);
  const tasks = new Map<number, { task: img.TaskImage; pagemap: img.PagemapImage }>();
  for (const t of tree.tasks) {
    const task = read("task", img.taskFile(t.pid));
    const pagemap = read("pagemap", img.pagemapFile(t.pid));
    tasks.set(t.pid, { task, pagemap });
  }
  return { inventory, tree, files, tasks };
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

export function restore(opts: RestoreOptions): { pid: number } {
  const images = loadImages(opts.dir);
  const root = images.tree.tasks[0];
  if (!root || images.tree.tasks.length !== 1) {
    throw new CrError("restore", `unsupported: ${images.tree.tasks.length} tasks in the tree (only single processes yet)`);
  }
  const pid = root.pid;
  if (existsSync(`/proc/${pid}`)) throw new CrError("restore", `pid ${pid} is in use by ${pidHolder(pid)}`, { pid, errno: 17 });
  const { task, pagemap } = images.tasks.get(pid)!;
  const plan = buildPlan({
    pid, sid: root.sid, pgid: root.pgid, task, pagemap, files: images.files,
    pagesPath: resolve(opts.dir, img.pagesFile(pid)),
    selfMaps: parseMaps(readFileSync("/proc/self/maps", "utf8")),
    restorerLen: native.nativeBlobs().restorer.length,
  });
  opts.log(`plan for ${pid}: ${plan.bytes.length} bytes, restorer hole at 0x${plan.holeStart.toString(16)}`);
  const spawned = native.restoreSpawn(plan.bytes, pid);
  const failure = native.restoreStatus(spawned.statusFd, pid);
  if (failure) {
    try {
      native.kill(pid, 9);
    } catch {
      // Already gone.
    }
    native.wait(pid);
    const step = RESTORE_STEPS[failure.step] ?? `step ${failure.step}`;
    throw new CrError("restore", `restoring failed at ${step} (item ${failure.index}): ${native.errnoName(-failure.err)}`, {
      pid, errno: -failure.err,
    });
  }
  // The task left the restorer through rt_sigreturn; its area is dead weight
  // (and RWX): remove it from outside, like a tiny dump with -R.
  try {
    native.unmapRemote(pid, syscallSite(task.mm.vmas, pid), plan.holeStart, plan.holeLen);
  } catch (e) {
    // A task that already exited has nothing left to clean.
    if (!(e instanceof CrError && e.errno === 3)) throw e;
  }
  if (opts.pidfile) writeFileSync(opts.pidfile, `${pid}\n`);
  opts.log(`restored ${pid}`);
  return { pid };
}

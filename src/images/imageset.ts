// The image directory as a whole: every record decoded (with its own checks,
// see semantic.ts) and checked against the others: the tree against the task
// files, each pagemap against its pages file and its task's VMAs, fds against
// files.cbor, every epoll registration against a task that can make it.
// Restore loads images only through this, so it never plans from a set that
// only makes sense file by file.
import { CrError } from "../errors.ts";
import { decodeImage } from "./codec.ts";
import { readImageFile, statImageFile } from "./files.ts";
import { FILES, INVENTORY, TREE, ghostFile, pagemapFile, pagesFile, shmemFile, taskFile } from "./index.ts";
import {
  checkPagemap, type FilesImage, type ImageKind, type InventoryImage, type PagemapImage, type TaskImage, type TreeImage,
} from "./schema.ts";

export interface TaskImages {
  task: TaskImage;
  pagemap: PagemapImage;
  /** Size of pages-PID.img in bytes. */
  pagesSize: number;
}

/** One epoll_ctl(EPOLL_CTL_ADD) a restored task makes once its fds are in place. */
export interface EpollRegistration {
  /** The epoll and the registered file, as that task's fd numbers. */
  epfd: number;
  tfd: number;
  events: number;
  data: bigint;
}

export interface ImageSet {
  inventory: InventoryImage;
  tree: TreeImage;
  files: FilesImage;
  /** By pid, in tree order; zombies have no task images. */
  tasks: Map<number, TaskImages>;
  /** By pid: the epoll registrations that task makes at restore (see epollRegistrations). */
  epolls: Map<number, EpollRegistration[]>;
}

const bad = (name: string, msg: string) => new CrError("image", `${name}: ${msg}`);

/** The first page run of `p` that is not inside a VMA whose pages were dumped, or null. */
function runOutsideVmas(p: PagemapImage, t: TaskImage, pageSize: number): string | null {
  const vmas = t.mm.vmas.filter((v) => v.dumped);
  let vi = 0;
  for (const e of p.entries) {
    const end = e.start + e.pages * pageSize;
    while (vi < vmas.length && vmas[vi]!.end <= e.start) vi++;
    const v = vmas[vi];
    if (!v || e.start < v.start || end > v.end) return `page run 0x${e.start.toString(16)}-0x${end.toString(16)} is outside every dumped VMA`;
  }
  return null;
}

function checkTask(pid: number, threads: number[], ti: TaskImages, files: FilesImage, pageSize: number): void {
  const { task, pagemap } = ti;
  if (task.pid !== pid) throw bad(taskFile(pid), `holds pid ${task.pid}`);
  const tids = task.threads.map((t) => t.tid).sort((a, b) => a - b).join(",");
  if (tids !== [...threads].sort((a, b) => a - b).join(",")) throw bad(taskFile(pid), `threads ${tids} differ from the tree's`);
  const ids = new Set(files.files.map((f) => f.id));
  const orphan = task.fds.find((f) => !ids.has(f.fileId));
  if (orphan) throw bad(taskFile(pid), `fd ${orphan.fd} refers to file ${orphan.fileId}, missing from ${FILES}`);
  const problem = checkPagemap(pagemap, pageSize, ti.pagesSize) ?? runOutsideVmas(pagemap, task, pageSize);
  if (problem !== null) throw bad(pagemapFile(pid), problem);
}

/** Saved non-zero pages of an object of `size` bytes against the image file holding them. */
function runsProblem(dir: string, name: string, runs: PagemapImage["entries"], size: number, pageSize: number): string | null {
  const problem = checkPagemap({ entries: runs }, pageSize, statImageFile(dir, name).size);
  if (problem !== null) return `(${name}): ${problem}`;
  const last = runs[runs.length - 1];
  if (last && last.start + last.pages * pageSize > Math.ceil(size / pageSize) * pageSize) return `pages beyond its size ${size}`;
  return null;
}

/** Each shared memory object's pages against its shmem-ID.img and its size. */
function checkShmem(dir: string, files: FilesImage, pageSize: number): void {
  for (const o of files.shmem ?? []) {
    const problem = runsProblem(dir, shmemFile(o.id), o.pages, o.size, pageSize);
    if (problem !== null) throw bad(FILES, `shmem ${o.id} ${problem}`);
  }
}

/**
 * Each ghost file's pages against its ghost-ID.img and its size, and every
 * mapping and exe that names a ghost against files.cbor's ghosts.
 */
function checkGhostFiles(dir: string, files: FilesImage, tasks: Map<number, TaskImages>, pageSize: number): void {
  for (const g of files.ghosts ?? []) {
    const problem = runsProblem(dir, ghostFile(g.id), g.pages, g.size, pageSize);
    if (problem !== null) throw bad(FILES, `ghost ${g.id} ${problem}`);
  }
  const ids = new Set((files.ghosts ?? []).map((g) => g.id));
  for (const [pid, { task }] of tasks) {
    if (task.exeGhostId !== undefined && !ids.has(task.exeGhostId)) throw bad(taskFile(pid), `exe: ghost ${task.exeGhostId} is not in ${FILES}`);
    const v = task.mm.vmas.find((x) => x.ghostId !== undefined && !ids.has(x.ghostId));
    if (v) throw bad(taskFile(pid), `mapping 0x${v.start.toString(16)}: ghost ${v.ghostId} is not in ${FILES}`);
  }
}

/**
 * Who makes each epoll registration at restore. A registration is keyed by
 * (file, fd number in the process that made it), so it must be made by a task
 * that holds the epoll and has the registered file at that very fd number:
 * the first such task in tree order makes it, once, even when the epoll is
 * shared by several tasks. None at all: the image cannot be restored.
 */
function epollRegistrations(files: FilesImage, tasks: Map<number, TaskImages>): Map<number, EpollRegistration[]> {
  const out = new Map<number, EpollRegistration[]>();
  for (const f of files.files) {
    if (f.kind !== "epoll" || !f.epoll) continue;
    for (const r of f.epoll) {
      let done = false;
      for (const [pid, { task }] of tasks) {
        const epfd = task.fds.find((x) => x.fileId === f.id);
        if (!epfd || !task.fds.some((x) => x.fd === r.tfd && x.fileId === r.fileId)) continue;
        const list = out.get(pid) ?? [];
        list.push({ epfd: epfd.fd, tfd: r.tfd, events: r.events, data: r.data });
        out.set(pid, list);
        done = true;
        break;
      }
      if (!done) throw bad(FILES, `epoll ${f.id}: no task holds it and file ${r.fileId} at fd ${r.tfd}, so fd ${r.tfd} cannot be registered`);
    }
  }
  return out;
}

/**
 * A shell job's outside ids and terminals go together, and only with the
 * option that allows them: a terminal belongs to the session outside the tree.
 */
function checkShellJob(inventory: InventoryImage, tree: TreeImage, files: FilesImage): void {
  const tty = files.files.find((f) => f.kind === "tty");
  if (!inventory.options.shellJob && (tree.external || tty)) {
    throw bad(tree.external ? TREE : FILES, `${tree.external ? "external ids" : `tty ${tty!.id}`} in images dumped without --shell-job`);
  }
  if (tty && !tree.external) throw bad(FILES, `tty ${tty.id}: a terminal, but ${TREE} has no session outside the tree`);
}

export function loadImageSet(dir: string): ImageSet {
  const read = <K extends ImageKind>(kind: K, name: string) => decodeImage(kind, readImageFile(dir, name), name);
  const inventory = read("inventory", INVENTORY);
  const tree = read("tree", TREE);
  if (!tree.tasks.some((t) => t.pid === inventory.rootPid)) throw bad(TREE, `the root pid ${inventory.rootPid} of ${INVENTORY} is not in the tree`);
  const files = read("files", FILES);
  checkShellJob(inventory, tree, files);
  checkShmem(dir, files, inventory.pageSize);
  const tasks = new Map<number, TaskImages>();
  for (const t of tree.tasks) {
    // A zombie has nothing left but its exit status, kept in the tree.
    if (t.state === "zombie") continue;
    const ti = {
      task: read("task", taskFile(t.pid)),
      pagemap: read("pagemap", pagemapFile(t.pid)),
      pagesSize: statImageFile(dir, pagesFile(t.pid)).size,
    };
    checkTask(t.pid, t.threads, ti, files, inventory.pageSize);
    tasks.set(t.pid, ti);
  }
  checkGhostFiles(dir, files, tasks, inventory.pageSize);
  return { inventory, tree, files, tasks, epolls: epollRegistrations(files, tasks) };
}

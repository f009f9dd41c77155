// `cr show PATH`: an image directory (or one file of it) decoded for a human,
// or as JSON. Decoding and every check is the image layer's (src/images): show
// only picks what to print. Any problem is a CrError naming the file.
import { existsSync, statSync } from "node:fs";
import { basename, dirname } from "node:path";
import { CrError } from "../errors.ts";
import * as img from "../images/index.ts";
import {
  formatEpolls, formatFiles, formatGhosts, formatInotifyWatches, formatInventory, formatManifest, formatPagemap, formatTask, formatTree,
} from "./format.ts";
import { pagemapJson, toJson, type Json } from "./json.ts";
import { size } from "./names.ts";

export interface ShowOptions {
  json: boolean;
  /** Registers of every thread (text output; JSON always has them). */
  regs: boolean;
  /** Check the manifest (sizes, hashes, no stray file) first. */
  verify: boolean;
}

const read = <K extends img.ImageKind>(dir: string, kind: K, name: string) => img.decodeImage(kind, img.readImageFile(dir, name), name);

function manifestIfAny(dir: string, verify: boolean): img.ManifestImage | undefined {
  if (verify) return img.verifyManifest(dir).manifest;
  return existsSync(`${dir}/${img.MANIFEST}`) ? read(dir, "manifest", img.MANIFEST) : undefined;
}

function pageSizeBeside(dir: string): number {
  return existsSync(`${dir}/${img.INVENTORY}`) ? read(dir, "inventory", img.INVENTORY).pageSize : 4096;
}

function showDir(dir: string, opts: ShowOptions): string {
  const manifest = manifestIfAny(dir, opts.verify);
  const set = img.loadImageSet(dir);
  const pageSize = set.inventory.pageSize;
  if (opts.json) {
    const tasks = [...set.tasks.values()].map((t) => ({
      ...(toJson(t.task) as { [k: string]: Json }),
      pagemap: pagemapJson(t.pagemap, pageSize),
      pagesSize: t.pagesSize,
    }));
    const out = {
      dir, verified: opts.verify, inventory: toJson(set.inventory), tree: toJson(set.tree), files: toJson(set.files),
      manifest: toJson(manifest), tasks,
    };
    return JSON.stringify(out, null, 2);
  }
  const comm = (pid: number) => set.tasks.get(pid)?.task.comm;
  const lines = [
    `image directory ${dir}`,
    ...formatInventory(set.inventory).map((l) => `  ${l}`),
    manifest ? `manifest: ${manifest.files.length} files, ${manifest.hashAlg}, ${opts.verify ? "verified" : "not verified (--verify checks it)"}`
      : "manifest: missing",
    `files: ${set.files.files.length} open file descriptions, ${set.files.pipes?.length ?? 0} pipes, ` +
      `${set.files.fifos?.length ?? 0} FIFOs, ${set.files.shmem?.length ?? 0} shared memory objects, ${set.files.ghosts?.length ?? 0} ghost files`,
    ...formatEpolls(set.files),
    ...formatInotifyWatches(set.files),
    ...formatGhosts(set.files),
    "process tree:",
    ...formatTree(set.tree, comm),
  ];
  for (const t of set.tasks.values()) {
    lines.push("", ...formatTask({ task: t.task, pagemap: t.pagemap, files: set.files, pageSize, regs: opts.regs }));
  }
  return lines.join("\n");
}

/** ghost-ID.img: checked against its record in files.cbor beside it. */
function showGhostImage(dir: string, name: string, id: number, opts: ShowOptions): string {
  const bytes = img.statImageFile(dir, name).size;
  const ghost = read(dir, "files", img.FILES).ghosts?.find((g) => g.id === id);
  if (!ghost) throw new CrError("image", `${name}: ${img.FILES} has no ghost ${id}`);
  const problem = img.checkPagemap({ entries: ghost.pages }, pageSizeBeside(dir), bytes);
  if (problem !== null) throw new CrError("image", `${name}: ${problem}`);
  if (opts.json) return JSON.stringify(toJson({ file: name, size: bytes, ghost }), null, 2);
  return [`${name}: ${bytes} bytes (${size(bytes)}) of the deleted file ${ghost.path}, in ${ghost.pages.length} runs:`,
    ...formatGhosts({ files: [], ghosts: [ghost] }), ...formatPagemap({ entries: ghost.pages }, pageSizeBeside(dir))].join("\n");
}

/** One file, its kind from its name. */
function showFile(dir: string, name: string, opts: ShowOptions): string {
  const ghost = /^ghost-(\d+)\.img$/.exec(name);
  if (ghost) return showGhostImage(dir, name, Number(ghost[1]), opts);
  const m = /^(task|pagemap|pages)-(\d+)\.(cbor|img)$/.exec(name);
  const out = <T>(value: T, text: (v: T) => string[]) => (opts.json ? JSON.stringify(toJson(value), null, 2) : [name, ...text(value)].join("\n"));
  if (name === img.INVENTORY) return out(read(dir, "inventory", name), formatInventory);
  if (name === img.TREE) return out(read(dir, "tree", name), (v) => formatTree(v));
  if (name === img.FILES) return out(read(dir, "files", name), formatFiles);
  if (name === img.MANIFEST) return out(read(dir, "manifest", name), formatManifest);
  if (m && m[1] === "task" && m[3] === "cbor") {
    return out(read(dir, "task", name), (task) => formatTask({ task, pageSize: pageSizeBeside(dir), regs: opts.regs }));
  }
  if (m && m[1] === "pagemap" && m[3] === "cbor") {
    const v = read(dir, "pagemap", name);
    const pageSize = pageSizeBeside(dir);
    return opts.json ? JSON.stringify(pagemapJson(v, pageSize), null, 2) : [name, ...formatPagemap(v, pageSize)].join("\n");
  }
  if (m && m[1] === "pages" && m[3] === "img") {
    const pid = Number(m[2]);
    const bytes = img.statImageFile(dir, name).size;
    const pagemap = read(dir, "pagemap", img.pagemapFile(pid));
    const pageSize = pageSizeBeside(dir);
    const problem = img.checkPagemap(pagemap, pageSize, bytes);
    if (problem !== null) throw new CrError("image", `${img.pagemapFile(pid)}: ${problem}`);
    if (opts.json) return JSON.stringify({ file: name, size: bytes, ranges: pagemapJson(pagemap, pageSize) }, null, 2);
    return [`${name}: ${bytes} bytes (${size(bytes)}) of pages, per ${img.pagemapFile(pid)}:`, ...formatPagemap(pagemap, pageSize)].join("\n");
  }
  throw new CrError("show", `${name}: not an image file name (inventory.cbor, tree.cbor, files.cbor, manifest.cbor, task-PID.cbor, pagemap-PID.cbor, pages-PID.img, ghost-ID.img)`);
}

export function show(path: string, opts: ShowOptions): string {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new CrError("show", `${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : (e as Error).message}`);
  }
  if (st.isDirectory()) return showDir(path, opts);
  if (opts.verify) throw new CrError("show", `--verify needs the image directory, not one file (${path})`);
  return showFile(dirname(path), basename(path), opts);
}

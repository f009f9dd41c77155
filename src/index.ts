// cr as a library for TypeScript programs on Bun (a migration daemon, a CI
// system snapshotting jobs, a test harness): `import { dump, restore, show,
// check } from "cr"`. Options are named as the command line's long options;
// every failure is one CrError (op, pid, errno, a one-line message). The CLI
// (cli.ts) is a thin shell over these functions.
//
// Used as a package (not compiled into dist/cr), cr finds libcr and its
// blobs in zig/zig-out beside its sources: build them first (`make native`).
// The calling process becomes the parent of what `restore` brings back.
import { runCheck, type CheckReport } from "./check.ts";
import { dump as dumpTree, type DumpResult } from "./dump/index.ts";
import { DEFAULT_GHOST_LIMIT } from "./dump/ghost.ts";
import { restore as restoreTree } from "./restore/index.ts";
import { show as showImages } from "./show/index.ts";

export { CrError } from "./errors.ts";
export type { CheckReport, DumpResult };

const quiet = () => {};

export interface DumpOptions {
  /** -t: the root of the tree. */
  tree: number;
  /** -D: a new or empty directory. */
  imagesDir: string;
  /** -R: let the tree run on (else it is killed once the images are safe). */
  leaveRunning?: boolean;
  shellJob?: boolean;
  /** --no-sync is `sync: false`. */
  sync?: boolean;
  /** Largest deleted file saved, in bytes (default 64 MiB). */
  ghostLimit?: number;
  /** What -v3 would print, line by line. */
  log?: (msg: string) => void;
  /** Told, while pages are copied, how many bytes of the pages known so far are in the images. */
  progress?: (doneBytes: number, totalBytes: number) => void;
}

/** Checkpoint the tree of `tree` into `imagesDir`. */
export function dump(o: DumpOptions): DumpResult {
  return dumpTree({
    pid: o.tree, dir: o.imagesDir, leaveRunning: o.leaveRunning ?? false, shellJob: o.shellJob ?? false, tcpEstablished: false,
    sync: o.sync ?? true, ghostLimit: o.ghostLimit ?? DEFAULT_GHOST_LIMIT, log: o.log ?? quiet,
    ...(o.progress ? { progress: o.progress } : {}),
  });
}

export interface RestoreOptions {
  /** -D: the images. */
  imagesDir: string;
  /** -d: for a --shell-job, do not make it the terminal's foreground. */
  restoreDetached?: boolean;
  pidfile?: string;
  shellJob?: boolean;
  log?: (msg: string) => void;
  /** Told, while the new tasks fill their memory, about how many bytes of their pages are in. */
  progress?: (doneBytes: number, totalBytes: number) => void;
}

export interface RestoreResult {
  /** The restored root, a child of the calling process. */
  pid: number;
  /** --shell-job: the process group made the terminal's foreground (0: none). */
  foreground: number;
}

/** Restore the tree of `imagesDir`; it runs when this returns. */
export function restore(o: RestoreOptions): RestoreResult {
  return restoreTree({
    dir: o.imagesDir, detached: o.restoreDetached ?? false, shellJob: o.shellJob ?? false, log: o.log ?? quiet,
    ...(o.pidfile === undefined ? {} : { pidfile: o.pidfile }), ...(o.progress ? { progress: o.progress } : {}),
  });
}

export interface ShowOptions {
  json?: boolean;
  regs?: boolean;
  verify?: boolean;
}

/** `cr show`: an image directory (or one file of it) decoded, as text or JSON. */
export function show(path: string, o: ShowOptions = {}): string {
  return showImages(path, { json: o.json ?? false, regs: o.regs ?? false, verify: o.verify ?? false });
}

/** `cr check`: what this kernel and process support. */
export function check(): CheckReport {
  return runCheck();
}

#!/usr/bin/env bun
// The command line: cac commands mapped onto check / dump / restore / show.
// Every failure is one line on stderr and a non-zero exit.
import { cac } from "cac";
import { appendFileSync } from "node:fs";
import { resolve } from "node:path";
import { CrError } from "./errors.ts";
import { CR_COMMIT, CR_VERSION } from "./version.ts";
import { formatCheck } from "./check.ts";
import { DEFAULT_GHOST_LIMIT, formatSize, parseSize } from "./dump/ghost.ts";
import { waitForegroundJob } from "./restore/shelljob.ts";
import * as native from "./native/index.ts";
import { check, dump, restore, show } from "./index.ts";
import { progressLine } from "./progress.ts";
import { asTyped, DEFAULT_VERBOSITY, MAX_VERBOSITY, normalizeVerbosity } from "./cli-args.ts";

const cli = cac("cr");
/** CRIU's log levels: 0 nothing but the error line, 2 (default) warnings, 3 what happens, 4 details. */
let verbosity = DEFAULT_VERBOSITY;
/** -o FILE: the log goes there (relative to -D, as CRIU) instead of stderr. */
let logFile: string | undefined;

function logLine(line: string, always = false): void {
  if (logFile !== undefined) {
    try {
      appendFileSync(logFile, line);
      if (!always) return;
    } catch {
      // No log file (its directory is not there yet): stderr has it.
    }
  }
  process.stderr.write(line);
}
const log = (msg: string) => {
  if (verbosity >= 3) logLine(`cr: ${msg}\n`);
};

/** The log options of a dump or restore: verbosity and -o, resolved against the image directory. */
function setLogging(o: { verbosity?: string | number; logFile?: string }, dir: string | undefined): void {
  if (o.verbosity !== undefined) {
    const v = Number(o.verbosity);
    if (!Number.isInteger(v) || v < 0 || v > MAX_VERBOSITY) usage(`--verbosity ${o.verbosity}: not 0 .. ${MAX_VERBOSITY}`);
    verbosity = v;
  }
  if (o.logFile !== undefined) logFile = resolve(dir ?? ".", String(o.logFile));
}

function fail(e: unknown): never {
  if (e instanceof CrError) {
    logLine(`cr: ${e.oneLine()}\n`, true);
    if (verbosity >= 4 && e.cause) logLine(`cr: cause: ${String(e.cause)}\n`);
  } else {
    logLine(`cr: internal error: ${e instanceof Error ? e.message : String(e)}\n`, true);
    if (verbosity >= 4 && e instanceof Error && e.stack) logLine(e.stack + "\n");
  }
  process.exit(e instanceof CrError && e.signal !== undefined ? 128 + e.signal : 1);
}

const VERBOSITY_HELP = "Log level 0 .. 4, as CRIU's -v0 .. -v4 (-v, -vv, --verbose: one more than the default 2); 3 says what happens";

function usage(msg: string): never {
  process.stderr.write(`cr: ${msg} (see cr --help)\n`);
  process.exit(2);
}

function notYet(name: string): never {
  process.stderr.write(`cr: ${name}: not implemented yet\n`);
  process.exit(2);
}

cli.command("check", "Report what this kernel supports; exit 0 only if dump and restore can work here")
  .option("--json", "Machine-readable output")
  .action((o: { json?: boolean }) => {
    const r = check();
    process.stdout.write(o.json ? JSON.stringify(r, null, 2) + "\n" : formatCheck(r) + "\n");
    process.exit(r.canDump && r.canRestore ? 0 : 1);
  });

cli.command("dump", "Checkpoint a running process into an image directory")
  .option("-t, --tree <pid>", "PID of the process to dump")
  .option("-D, --images-dir <dir>", "Image directory")
  .option("-R, --leave-running", "Let the process run on after the dump")
  .option("--shell-job", "Allow a job of an interactive shell: its session outside the tree, its terminal")
  .option("--tcp-established", "Checkpoint established TCP connections")
  .option("--no-sync", "Do not fsync the images (tmpfs, benchmarks); they are synced otherwise")
  .option("--ghost-limit <size>", `Largest deleted file to save in the images (bytes, or with K/M/G; default ${formatSize(DEFAULT_GHOST_LIMIT)})`)
  .option("--verbosity <level>", VERBOSITY_HELP)
  .option("-o, --log-file <file>", "Write the log to FILE, relative to -D (it stays if the dump fails)")
  .option("--display-stats", "Print the dump's figures when it is done")
  .option("--json", "Machine-readable result")
  .action((o: {
    tree?: string; imagesDir?: string; leaveRunning?: boolean; shellJob?: boolean; tcpEstablished?: boolean; sync?: boolean;
    ghostLimit?: string | number; verbosity?: string | number; logFile?: string; displayStats?: boolean; json?: boolean;
  }) => {
    setLogging(o, o.imagesDir === undefined ? undefined : String(o.imagesDir));
    if (o.tree === undefined || o.imagesDir === undefined) fail(new CrError("dump", "need -t PID and -D DIR"));
    if (o.tcpEstablished) notYet("--tcp-established");
    const pid = Number(o.tree);
    let ghostLimit = DEFAULT_GHOST_LIMIT;
    if (o.ghostLimit !== undefined) {
      try {
        ghostLimit = parseSize(String(o.ghostLimit));
      } catch (e) {
        usage(`--ghost-limit: ${(e as Error).message}`);
      }
    }
    // A live progress line on a terminal, unless the log speaks there already.
    const line = process.stderr.isTTY && !o.json && (verbosity < 3 || logFile !== undefined) ? progressLine("dump", process.stderr) : undefined;
    try {
      const r = dump({
        tree: pid, imagesDir: String(o.imagesDir), leaveRunning: !!o.leaveRunning, shellJob: !!o.shellJob,
        sync: o.sync !== false, ghostLimit, log, ...(line ? { progress: (d: number, t: number) => line.update(d, t) } : {}),
      });
      line?.end();
      if (o.json) process.stdout.write(JSON.stringify(r) + "\n");
      if (o.displayStats) {
        process.stdout.write(`dump of ${r.pid}: ${r.tasks} task(s), ${(r.pagesBytes / 2 ** 20).toFixed(1)} MiB of pages, ` +
          `frozen ${r.freezeMs.toFixed(1)} ms, total ${r.totalMs.toFixed(1)} ms, peak RSS ${r.peakRssKiB} KiB\n`);
      }
    } catch (e) {
      line?.end();
      fail(e);
    }
  });

cli.command("restore", "Restore a process from an image directory")
  .option("-D, --images-dir <dir>", "Image directory")
  .option("-d, --restore-detached", "Return once the process runs")
  .option("--pidfile <file>", "Write the restored root PID here")
  .option("--shell-job", "Attach a job dumped with --shell-job to this session and terminal")
  .option("--verbosity <level>", VERBOSITY_HELP)
  .option("-o, --log-file <file>", "Write the log to FILE, relative to -D")
  .option("--display-stats", "Print the restore's figures once the tree runs")
  .option("--json", "Machine-readable result once the tree runs")
  .action((o: {
    imagesDir?: string; restoreDetached?: boolean; pidfile?: string; shellJob?: boolean; verbosity?: string | number; logFile?: string;
    displayStats?: boolean; json?: boolean;
  }) => {
    setLogging(o, o.imagesDir === undefined ? undefined : String(o.imagesDir));
    if (o.imagesDir === undefined) fail(new CrError("restore", "need -D DIR"));
    // A shell job's terminal is the job's: no progress line on it.
    const line = process.stderr.isTTY && !o.shellJob && !o.json && (verbosity < 3 || logFile !== undefined) ? progressLine("restore", process.stderr) : undefined;
    try {
      const t0 = performance.now();
      const { pid, foreground } = restore({
        imagesDir: String(o.imagesDir), restoreDetached: !!o.restoreDetached, shellJob: !!o.shellJob, log,
        ...(o.pidfile === undefined ? {} : { pidfile: String(o.pidfile) }),
        ...(line ? { progress: (d: number, t: number) => line.update(d, t) } : {}),
      });
      line?.end();
      const ms = performance.now() - t0;
      if (o.json) process.stdout.write(JSON.stringify({ pid, totalMs: ms }) + "\n");
      if (o.displayStats) process.stdout.write(`restore of ${pid}: running after ${ms.toFixed(1)} ms\n`);
      if (o.restoreDetached) process.exit(0);
      // Stay the parent of the restored task and exit with its status.
      const status = foreground ? waitForegroundJob(pid, foreground) : native.wait(pid).status;
      const termsig = status & 0x7f;
      process.exit(termsig === 0 ? (status >> 8) & 0xff : 128 + termsig);
    } catch (e) {
      line?.end();
      fail(e);
    }
  });

cli.command("show <path>", "Decode an image directory (or one file of it) for a human")
  .option("--json", "Full decoded records as JSON")
  .option("--regs", "Print the registers of every thread")
  .option("--verify", "Check the manifest (sizes, hashes, no stray files) first")
  .action((path: string, o: { json?: boolean; regs?: boolean; verify?: boolean }) => {
    try {
      process.stdout.write(show(String(path), o) + "\n");
    } catch (e) {
      fail(e);
    }
  });

cli.command("pre-dump", "Incremental pre-dump (later milestone)").action(() => notYet("pre-dump"));
cli.command("lazy-pages", "Lazy page restore (later milestone)").action(() => notYet("lazy-pages"));
cli.command("page-server", "Page server (later milestone)").action(() => notYet("page-server"));

cli.help();
cli.version(`${CR_VERSION} (commit ${CR_COMMIT})`);
cli.on("command:*", () => {
  process.stderr.write(`cr: unknown command ${cli.args.join(" ")} (see cr --help)\n`);
  process.exit(2);
});

// --no-sync's default is the sync itself: cac would print "(default: true)" beside it.
for (const c of cli.commands) for (const opt of c.options) if (opt.negated) opt.config.default = undefined;

const argv = normalizeVerbosity(process.argv.slice(2));
try {
  cli.parse([...process.argv.slice(0, 2), ...argv], { run: false });
  if (!cli.matchedCommand && !cli.options.help && !cli.options.version) {
    cli.outputHelp();
    process.exit(2);
  }
  await cli.runMatchedCommand();
} catch (e) {
  // cac's own errors are usage errors, not cr's (its class name does not survive minifying).
  if (e instanceof Error && !(e instanceof CrError) && /^(Unknown option|option .* value is missing|missing required args)/.test(e.message)) {
    process.stderr.write(`cr: ${asTyped(e.message, argv)} (see cr --help)\n`);
    process.exit(2);
  }
  fail(e);
}

#!/usr/bin/env bun
// The command line: cac commands mapped onto check / dump / restore / show.
// Every failure is one line on stderr and a non-zero exit.
import { cac } from "cac";
import { CrError } from "./errors.ts";
import { CR_VERSION } from "./version.ts";
import { runCheck, formatCheck } from "./check.ts";
import { dump } from "./dump/index.ts";
import { DEFAULT_GHOST_LIMIT, formatSize, parseSize } from "./dump/ghost.ts";
import { restore } from "./restore/index.ts";
import { waitForegroundJob } from "./restore/shelljob.ts";
import * as native from "./native/index.ts";
import { show } from "./show/index.ts";

const cli = cac("cr");
let verbose = false;
const log = (msg: string) => {
  if (verbose) process.stderr.write(`cr: ${msg}\n`);
};

function fail(e: unknown): never {
  if (e instanceof CrError) {
    process.stderr.write(`cr: ${e.oneLine()}\n`);
    if (verbose && e.cause) process.stderr.write(`cr: cause: ${String(e.cause)}\n`);
  } else {
    process.stderr.write(`cr: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    if (verbose && e instanceof Error && e.stack) process.stderr.write(e.stack + "\n");
  }
  process.exit(e instanceof CrError && e.signal !== undefined ? 128 + e.signal : 1);
}

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
    const r = runCheck();
    process.stdout.write(o.json ? JSON.stringify(r, null, 2) + "\n" : formatCheck(r) + "\n");
    process.exit(r.canDump && r.canRestore ? 0 : 1);
  });

cli.command("dump", "Checkpoint a running process into an image directory")
  .option("-t, --tree <pid>", "PID of the process to dump")
  .option("-D, --images-dir <dir>", "Image directory")
  .option("-R, --leave-running", "Let the process run on after the dump")
  .option("--shell-job", "Allow a job of an interactive shell: its session outside the tree, its terminal")
  .option("--tcp-established", "Checkpoint established TCP connections")
  .option("--no-sync", "Do not fsync the images (tmpfs, benchmarks)")
  .option("--ghost-limit <size>", `Largest deleted file to save in the images (bytes, or with K/M/G; default ${formatSize(DEFAULT_GHOST_LIMIT)})`)
  .option("-v, --verbose", "Say what happens")
  .option("--json", "Machine-readable result")
  .action((o: {
    tree?: string; imagesDir?: string; leaveRunning?: boolean; shellJob?: boolean; tcpEstablished?: boolean; sync?: boolean;
    ghostLimit?: string | number; verbose?: boolean; json?: boolean;
  }) => {
    verbose = !!o.verbose;
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
    try {
      const r = dump({
        pid, dir: String(o.imagesDir), leaveRunning: !!o.leaveRunning, shellJob: !!o.shellJob,
        tcpEstablished: false, sync: o.sync !== false, ghostLimit, log,
      });
      if (o.json) process.stdout.write(JSON.stringify(r) + "\n");
    } catch (e) {
      fail(e);
    }
  });

cli.command("restore", "Restore a process from an image directory")
  .option("-D, --images-dir <dir>", "Image directory")
  .option("-d, --restore-detached", "Return once the process runs")
  .option("--pidfile <file>", "Write the restored root PID here")
  .option("--shell-job", "Attach a job dumped with --shell-job to this session and terminal")
  .option("-v, --verbose", "Say what happens")
  .action((o: { imagesDir?: string; restoreDetached?: boolean; pidfile?: string; shellJob?: boolean; verbose?: boolean }) => {
    verbose = !!o.verbose;
    if (o.imagesDir === undefined) fail(new CrError("restore", "need -D DIR"));
    try {
      const { pid, foreground } = restore({
        dir: String(o.imagesDir), detached: !!o.restoreDetached, shellJob: !!o.shellJob, log,
        ...(o.pidfile === undefined ? {} : { pidfile: String(o.pidfile) }),
      });
      if (o.restoreDetached) process.exit(0);
      // Stay the parent of the restored task and exit with its status.
      const status = foreground ? waitForegroundJob(pid, foreground) : native.wait(pid).status;
      const termsig = status & 0x7f;
      process.exit(termsig === 0 ? (status >> 8) & 0xff : 128 + termsig);
    } catch (e) {
      fail(e);
    }
  });

cli.command("show <path>", "Decode an image directory (or one file of it) for a human")
  .option("--json", "Full decoded records as JSON")
  .option("--regs", "Print the registers of every thread")
  .option("--verify", "Check the manifest (sizes, hashes, no stray files) first")
  .action((path: string, o: { json?: boolean; regs?: boolean; verify?: boolean }) => {
    try {
      process.stdout.write(show(String(path), { json: !!o.json, regs: !!o.regs, verify: !!o.verify }) + "\n");
    } catch (e) {
      fail(e);
    }
  });

cli.command("pre-dump", "Incremental pre-dump (later milestone)").action(() => notYet("pre-dump"));
cli.command("lazy-pages", "Lazy page restore (later milestone)").action(() => notYet("lazy-pages"));
cli.command("page-server", "Page server (later milestone)").action(() => notYet("page-server"));

cli.help();
cli.version(CR_VERSION);
cli.on("command:*", () => {
  process.stderr.write(`cr: unknown command ${cli.args.join(" ")} (see cr --help)\n`);
  process.exit(2);
});

try {
  cli.parse(process.argv, { run: false });
  if (!cli.matchedCommand && !cli.options.help && !cli.options.version) {
    cli.outputHelp();
    process.exit(2);
  }
  await cli.runMatchedCommand();
} catch (e) {
  // cac's own errors are usage errors, not cr's (its class name does not survive minifying).
  if (e instanceof Error && !(e instanceof CrError) && /^(Unknown option|option .* value is missing|missing required args)/.test(e.message)) {
    process.stderr.write(`cr: ${e.message} (see cr --help)\n`);
    process.exit(2);
  }
  fail(e);
}

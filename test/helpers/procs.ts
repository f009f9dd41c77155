// Processes and temp dirs of the round-trip tests: every test starts its
// workloads through here and calls cleanup() in a finally/afterEach, which
// kills (by PID, only ours) and reaps what is left and removes the dirs.
import { expect } from "bun:test";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as native from "../../src/native/index.ts";
import * as img from "../../src/images/index.ts";

export const ROOT = resolve(import.meta.dir, "../..");
export const CR = join(ROOT, "dist/cr");
export const WORKLOADS = join(ROOT, "test/workloads/bin");

const ourPids = new Set<number>();
const ourDirs = new Set<string>();

export function tempDir(prefix = "cr-test-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  ourDirs.add(d);
  return d;
}

export function sleepMs(ms: number): void {
  Bun.sleepSync(ms);
}

/** Poll `cond` every 10 ms until it holds or `ms` pass. */
export function waitFor(cond: () => boolean, ms: number, what: string): void {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    sleepMs(10);
  }
}

/** The one-letter state of `pid` (R, S, Z ...), or null when it does not exist. */
export function procState(pid: number): string | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2, s.lastIndexOf(")") + 3);
  } catch {
    return null;
  }
}

/** The pid tracing `pid` (0: none; also 0 once it is gone: nobody traces it, so check alive() first). */
export function tracerOf(pid: number): number {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return 0;
  }
  return Number(/TracerPid:\s+(\d+)/.exec(status)?.[1] ?? -1);
}

/** The only line of `s` (cr's failures print exactly one). */
export function oneLine(s: string): string {
  const lines = s.trim().split("\n");
  if (lines.length !== 1) throw new Error(`expected one line, got ${lines.length}: ${JSON.stringify(s)}`);
  return lines[0]!;
}

export function alive(pid: number): boolean {
  const s = procState(pid);
  return s !== null && s !== "Z";
}

/** Reap `pid` if it is our (adopted) zombie; true when the pid is free now. */
function reap(pid: number): boolean {
  if (procState(pid) === null) return true;
  try {
    native.wait(pid, native.WNOHANG);
  } catch {
    // Not our child: someone else reaps it.
  }
  return procState(pid) === null;
}

/** Wait until `pid` no longer exists (reaping it if it came to us). */
export function waitGone(pid: number, ms = 10_000): void {
  waitFor(() => reap(pid), ms, `pid ${pid} to be gone`);
}

/** Every pid a dump in `images` covers (from its tree.cbor): all must be free before a restore. */
export function dumpedPids(images: string): number[] {
  return img.decodeImage("tree", img.readImageFile(images, img.TREE), img.TREE).tasks.map((t) => t.pid);
}

/**
 * After a refused restore: the dump in `images` covers exactly the tasks
 * `pids` (so that what is checked below is every pid the restore would have
 * created, and not an empty or other list), and no process or thread, not
 * even a zombie, has any pid or tid of the dump. (A task created and then
 * killed and reaped by cr before it exits leaves no trace here: this shows
 * that nothing of the restore is left, not when it was refused.)
 */
export function expectNothingRestored(images: string, pids: number[]): void {
  const tree = img.decodeImage("tree", img.readImageFile(images, img.TREE), img.TREE).tasks;
  const sorted = (a: number[]) => [...a].sort((x, y) => x - y);
  expect(pids.length).toBeGreaterThan(0);
  expect(sorted(tree.map((t) => t.pid))).toEqual(sorted(pids));
  const tids = tree.flatMap((t) => t.threads);
  expect(tids.length).toBeGreaterThanOrEqual(pids.length);
  for (const t of tids) expect({ tid: t, state: procState(t) }).toEqual({ tid: t, state: null });
}

/** Wait until every task of the dump in `images` is gone (reaping those that come to us). */
export function waitDumpedGone(images: string): void {
  for (const pid of dumpedPids(images)) waitGone(pid);
}

export interface Workload {
  pid: number;
  dir: string;
  proc: ReturnType<typeof Bun.spawn>;
}

/** Start test/workloads/bin/NAME with a fresh dir as argv[1]; wait for its `ready` file. */
export function startWorkload(name: string, args: string[] = [], opts: { cwd?: string } = {}): Workload {
  const dir = tempDir(`cr-${name}-`);
  const proc = Bun.spawn([join(WORKLOADS, name), dir, ...args], {
    stdio: ["ignore", "ignore", "ignore"],
    cwd: opts.cwd ?? dir,
  });
  ourPids.add(proc.pid);
  waitFor(() => existsSync(join(dir, "ready")) || existsSync(join(dir, "result")), 15_000, `${name} to be ready`);
  if (existsSync(join(dir, "result"))) throw new Error(`${name} failed before ready: ${readResult(dir)}`);
  return { pid: proc.pid, dir, proc };
}

/** The lines of /proc/PID/task/TID/status whose field is one of `fields`, by thread id. */
export function statusLinesByThread(pid: number, fields: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const tid of readdirSync(`/proc/${pid}/task`).sort()) {
    const lines = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8").split("\n");
    out[tid] = lines.filter((l) => fields.includes(l.split(":")[0]!));
  }
  return out;
}

export function track(pid: number): void {
  ourPids.add(pid);
}

export function readProgress(dir: string): number {
  try {
    return Number(readFileSync(join(dir, "progress"), "utf8").trim());
  } catch {
    return -1;
  }
}

export function readResult(dir: string): string | null {
  try {
    return readFileSync(join(dir, "result"), "utf8").trim();
  } catch {
    return null;
  }
}

/** Ask a workload to verify everything once more and exit; returns its result line. */
export function stopWorkload(w: { pid: number; dir: string }, ms = 20_000): string {
  writeFileSync(join(w.dir, "stop"), "");
  waitFor(() => readResult(w.dir) !== null && !alive(w.pid), ms, `workload ${w.pid} to finish`);
  reap(w.pid);
  return readResult(w.dir)!;
}

/** After a refused dump: `pid` runs on, untraced, and its workload (in `dir`) makes `n` more iterations. */
export function expectRunsOnUntraced(pid: number, dir: string, n = 5): void {
  expect(alive(pid)).toBe(true);
  expect(tracerOf(pid)).toBe(0);
  const at = readProgress(dir);
  waitFor(() => readProgress(dir) >= at + n, 10_000, "progress after the refused dump");
}

/** What dumpRetrying saw in this test file so far: reported with every dump, so that a rising refusal rate shows. */
const retryStats = { dumps: 0, attempts: 0, refused: 0 };

/** Attempts dumpRetrying makes at most (see there). */
export const DUMP_ATTEMPTS = 10;

/**
 * Dump `pid` into a fresh dir. A workload that connects to itself all the
 * time is refused by a dump that lands in the moment a connection is in
 * flight (a connection waiting to be accepted, say): a refusal by design,
 * which leaves it running. Nothing outside the workload can time a dump to
 * miss that moment (cr takes longer to start than the workload's pause), so
 * such a dump is tried again, `DUMP_ATTEMPTS` times at most: a refusal whose
 * line holds one of `transient` is logged (with its attempt number), checked
 * to have left the task running, untraced, with no images, and tried again
 * after a short pause; any other refusal fails the test at once, and so does
 * the last attempt refused, with every refusal in the message. Each dump
 * logs its attempts and the file's refusal rate so far.
 */
export function dumpRetrying(pid: number, transient: string[], extraArgs: string[] = []): string {
  const refusals: string[] = [];
  retryStats.dumps++;
  const rate = () =>
    `this file so far: ${retryStats.refused} of ${retryStats.attempts} attempts refused (${((100 * retryStats.refused) / retryStats.attempts).toFixed(1)}%) over ${retryStats.dumps} dumps`;
  for (let attempt = 1; attempt <= DUMP_ATTEMPTS; attempt++) {
    const images = tempDir("cr-images-");
    const d = cr(["dump", ...extraArgs, "-t", String(pid), "-D", images]);
    retryStats.attempts++;
    if (d.status === 0) {
      expect(d.stderr).toBe("");
      console.log(`dumpRetrying: pid ${pid} dumped at attempt ${attempt} of ${DUMP_ATTEMPTS} (${refusals.length} transient refusals); ${rate()}`);
      return images;
    }
    const line = oneLine(d.stderr);
    if (!transient.some((t) => line.includes(t))) {
      throw new Error(`dump of pid ${pid} refused at attempt ${attempt}, not for a transient reason (${transient.map((t) => JSON.stringify(t)).join(" or ")}): ${line}`);
    }
    retryStats.refused++;
    refusals.push(line);
    console.log(`dumpRetrying: pid ${pid}: attempt ${attempt} of ${DUMP_ATTEMPTS} refused (transient, ${attempt < DUMP_ATTEMPTS ? "trying again" : "giving up"}): ${line}`);
    // The refusal must have left the task as it was: running, untraced, and no set of images.
    expect(alive(pid)).toBe(true);
    expect(tracerOf(pid)).toBe(0);
    expect(existsSync(join(images, "manifest.cbor"))).toBe(false);
    sleepMs(10 + Math.floor(Math.random() * 40));
  }
  const why = new Map<string, number>();
  for (const r of refusals) why.set(r, (why.get(r) ?? 0) + 1);
  throw new Error(
    `dump of pid ${pid}: all ${DUMP_ATTEMPTS} attempts refused, each for a transient reason (the workload was never caught between two connections): ` +
      [...why].map(([r, n]) => `${n}x ${r}`).join("; ") + `; ${rate()}`,
  );
}

/** The workload makes `n` more iterations (or reports a result, which must then not be a failure). */
export function expectProgress(w: { dir: string }, n = 5): void {
  const at = readProgress(w.dir);
  waitFor(() => readProgress(w.dir) >= at + n || readResult(w.dir) !== null, 15_000, "progress after restore");
  expect(readResult(w.dir)).toBeNull();
}

/** The workload goes on and, asked to stop, passes its own final check. */
export function expectRunsOnAndPasses(w: { pid: number; dir: string }, n = 5): void {
  expectProgress(w, n);
  expect(stopWorkload(w)).toStartWith("PASS");
}

export function cr(args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(CR, args, { encoding: "utf8", cwd: opts.cwd ?? ROOT, timeout: opts.timeoutMs ?? 120_000 });
}

/** Kill (by PID) and reap everything this test started or restored; remove its dirs. */
export function cleanup(): void {
  for (const pid of ourPids) {
    if (alive(pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    try {
      waitGone(pid, 5_000);
    } catch {
      // Left to its parent; nothing more we may do.
    }
  }
  ourPids.clear();
  for (const d of ourDirs) rmSync(d, { recursive: true, force: true });
  ourDirs.clear();
}

/**
 * Dump `pid` into a fresh dir (killing it), wait for the pid to be free,
 * restore detached; returns the images dir. `transient`: refusals the dump
 * is tried again on (see dumpRetrying).
 */
export function roundTrip(pid: number, transient: string[] = []): string {
  let images: string;
  if (transient.length > 0) {
    images = dumpRetrying(pid, transient);
  } else {
    images = tempDir("cr-images-");
    const d = cr(["dump", "-t", String(pid), "-D", images]);
    expect(d.stderr).toBe("");
    expect(d.status).toBe(0);
  }
  waitGone(pid);
  const r = cr(["restore", "-D", images, "-d"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  track(pid);
  expect(alive(pid)).toBe(true);
  return images;
}

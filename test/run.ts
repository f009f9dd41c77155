// The whole test suite, as `make test` and CI run it: the Zig unit tests, then
// every bun test file. Ends with the line `N passed, N failed, N skipped` over
// both (skipped and todo tests are counted as skipped, never as passed or
// failed), and exits non-zero on any failure. A runner that exits non-zero
// without a failure in its counts, or that reports no counts at all, counts
// as one failure more.
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
let passed = 0;
let failed = 0;
let skipped = 0;

interface Ran {
  stdout: string;
  stderr: string;
  status: number | null;
}

function note(msg: string): void {
  process.stdout.write(`test runner: ${msg}\n`);
}

/** Without colour codes (in case a runner colours its output although it goes to a pipe). */
const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");

function run(cmd: string, args: string[], cwd: string): Ran {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: process.env, maxBuffer: 1 << 30 });
  process.stdout.write(r.stdout ?? "");
  process.stdout.write(r.stderr ?? "");
  if (r.error) note(`${cmd}: ${r.error.message}`);
  if (r.signal) note(`${cmd}: killed by ${r.signal}`);
  return { stdout: r.stdout ?? "", stderr: r.stderr ?? "", status: r.status };
}

/** One runner's counts: added to the totals; a non-zero exit with no failure counted is one failure. */
function add(what: string, r: Ran, c: { passed: number; failed: number; skipped: number } | null): void {
  if (c === null) {
    failed += 1;
    note(`${what} reported no result (exit ${r.status}): counted as 1 failure`);
    return;
  }
  note(`${what}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped (exit ${r.status})`);
  passed += c.passed;
  failed += c.failed;
  skipped += c.skipped;
  if (r.status !== 0 && c.failed === 0) {
    failed += 1;
    note(`${what} exited ${r.status} with no failed test counted: counted as 1 failure`);
  }
}

// Zig: `zig build test --summary all` ends with one line
//   Build Summary: S/T steps succeeded[; K skipped][; K failed]; P/N tests passed[; K skipped][; K failed][; K leaked]
// where P counts the tests that neither failed nor were skipped (a test
// skipped with error.SkipZigTest, e.g. the AVX2 hash test on a CPU without
// AVX2, is in N but not in P); a test that leaked memory is in P too, and
// counted here as failed. The steps' own "; K skipped" comes before the tests'.
function zigCounts(out: string): { passed: number; failed: number; skipped: number } | null {
  const lines = [...out.matchAll(/^Build Summary:.*$/gm)];
  const line = lines.at(-1)?.[0];
  if (line === undefined) return null;
  const t = /; (\d+)\/(\d+) tests passed((?:; \d+ \w+)*)/.exec(line);
  if (!t) return null;
  const tail = (word: string) => Number(new RegExp(`; (\\d+) ${word}`).exec(t[3]!)?.[1] ?? 0);
  const [p, n, skip, leaked] = [Number(t[1]), Number(t[2]), tail("skipped"), tail("leaked")];
  return { passed: p - leaked, failed: n - p - skip + leaked, skipped: skip };
}

const zig = resolve(root, ".tools/zig/ziglang/zig");
const zr = run(zig, ["build", "test", "--summary", "all"], resolve(root, "zig"));
add("zig build test", zr, zigCounts(plain(zr.stdout + zr.stderr)));

// Bun: its summary, on stderr after every test's own output, is a block of
// lines " N pass", " N skip", " N todo", " N fail", " N error", " N expect()
// calls" (those that are zero may be missing, pass and fail are always
// there) ended by "Ran N tests across M files.". Only that last block counts:
// a test's own output may hold such lines too.
function bunCounts(err: string): { passed: number; failed: number; skipped: number } | null {
  const lines = err.split("\n");
  let end = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (/^Ran \d+ tests? across \d+ files?\./.test(lines[i]!)) {
      end = i;
      break;
    }
  }
  if (end < 0) return null;
  const n: Record<string, number> = {};
  for (let i = end - 1; i >= 0; i--) {
    const m = /^\s*(\d+) (pass|skip|todo|fail|errors?|expect\(\) calls|snapshots?.*)$/.exec(lines[i]!);
    if (!m) break;
    const word = m[2]!;
    n[/^(error|expect|snapshot)/.exec(word)?.[1] ?? word] = Number(m[1]);
  }
  if (n.pass === undefined) return null;
  return { passed: n.pass, failed: n.fail ?? 0, skipped: (n.skip ?? 0) + (n.todo ?? 0) };
}

const files = process.argv.slice(2);
const br = run(process.execPath, ["test", ...(files.length ? files : ["test/"])], root);
add("bun test", br, bunCounts(plain(br.stderr)));

process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exit(failed === 0 ? 0 : 1);

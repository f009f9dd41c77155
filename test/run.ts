// The whole test suite, as `make test` and CI run it: the Zig unit tests, then
// every bun test file. Ends with the line `N passed, N failed` over both, and
// exits non-zero on any failure.
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
let passed = 0;
let failed = 0;

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: process.env });
  const out = (r.stdout ?? "") + (r.stderr ?? "");
  process.stdout.write(out);
  if (r.status !== 0 && r.error) process.stdout.write(`test runner: ${cmd}: ${r.error.message}\n`);
  return out + `\n__exit=${r.status}\n`;
}

// Zig: `--summary all` reports "N/M tests passed" per test binary.
const zig = resolve(root, ".tools/zig/ziglang/zig");
const zout = run(zig, ["build", "test", "--summary", "all"], resolve(root, "zig"));
const zm = [...zout.matchAll(/(\d+)\/(\d+) tests passed/g)];
if (zm.length === 0) {
  failed += 1;
  process.stdout.write("test runner: zig build test reported no result\n");
} else {
  for (const m of zm) {
    passed += Number(m[1]);
    failed += Number(m[2]) - Number(m[1]);
  }
}
if (!/__exit=0\n/.test(zout) && zm.every((m) => m[1] === m[2])) failed += 1;

// Bun: its own summary has " N pass" and " N fail" lines.
const files = process.argv.slice(2);
const bout = run(process.execPath, ["test", ...(files.length ? files : ["test/"])], root);
const p = /^\s*(\d+) pass/m.exec(bout);
const f = /^\s*(\d+) fail/m.exec(bout);
if (!p) {
  failed += 1;
  process.stdout.write("test runner: bun test reported no result\n");
} else {
  passed += Number(p[1]);
  failed += Number(f?.[1] ?? 0);
}
if (!/__exit=0\n/.test(bout) && Number(f?.[1] ?? 0) === 0) failed += 1;

process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exit(failed === 0 ? 0 : 1);

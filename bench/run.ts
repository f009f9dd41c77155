// Benchmarks (not tests): binary size and start-up, then a 1 GiB process:
// dump / restore time and throughput, freeze time, image size and the dumper's
// peak RSS, against the raw speed of copying the same memory and of writing
// the same amount to the same disk, measured in the same run (issue #3's
// target: dump >= 80 % of min(raw copy, raw write), peak RSS < 100 MiB).
// Env: BENCH_MIB (1024), BENCH_REPEAT (7), BENCH_DIR (/tmp), BENCH_CR (the
// cr binary to measure, e.g. an older build), BENCH_TREE_N / BENCH_TREE_MIB.
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync, unlinkSync, writeSync, readdirSync, mkdtempSync } from "node:fs";
import { join, resolve } from "node:path";
import * as native from "../src/native/index.ts";
import { parseMaps } from "../src/proc/maps.ts";

const ROOT = resolve(import.meta.dir, "..");
// BENCH_CR: another build of cr to measure (the raw baselines stay this tree's).
const CR = process.env.BENCH_CR ?? join(ROOT, "dist/cr");
const MIB = 1 << 20;
const sizeMiB = Number(process.env.BENCH_MIB ?? 1024);
const rows: [string, string][] = [];
const row = (k: string, v: string) => {
  rows.push([k, v]);
  process.stderr.write(`${k}: ${v}\n`);
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
function timeCmd(args: string[], n: number): number {
  const ts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const r = spawnSync(CR, args, { stdio: "ignore" });
    ts.push(performance.now() - t);
    if (r.status !== 0 && args[0] !== "check") throw new Error(`cr ${args.join(" ")} failed`);
  }
  return median(ts);
}

native.setChildSubreaper();
row("dist/cr size", `${(statSync(CR).size / MIB).toFixed(1)} MiB`);
// What makes it up: the Bun runtime it is compiled with, and cr's own share (code, libcr, blobs).
const bunSize = statSync(process.execPath).size;
row("  of which the Bun runtime", `${(bunSize / MIB).toFixed(1)} MiB (${process.execPath.replace(ROOT + "/", "")})`);
row("  of which cr (TypeScript bundle, libcr, blobs)", `${((statSync(CR).size - bunSize) / MIB).toFixed(2)} MiB`);
row("cr --version (median of 10)", `${timeCmd(["--version"], 10).toFixed(1)} ms`);
row("cr check (median of 10)", `${timeCmd(["check"], 10).toFixed(1)} ms`);

const repeat = Math.max(1, Number(process.env.BENCH_REPEAT ?? 7));
const work = mkdtempSync(join(process.env.BENCH_DIR ?? "/tmp", "cr-bench-"));
/** min(raw copy, fastest raw write) of the 1 GiB run, in MiB/s: moving the tree's pages costs at least this. */
let rawMBs = 0;
const startupMs = timeCmd(["--version"], 5);
const app = join(work, "app");
const images = join(work, "images");
spawnSync("mkdir", ["-p", app]);
let pid = 0;
try {
  const p = Bun.spawn([join(ROOT, "test/workloads/bin/pattern"), app, String(sizeMiB)], { stdio: ["ignore", "ignore", "ignore"] });
  pid = p.pid;
  while (!existsSync(join(app, "ready"))) Bun.sleepSync(20);

  // Every machine this runs on is shared and noisy, so each measurement is
  // taken BENCH_REPEAT times, interleaved, and compared by medians and by
  // best runs: raw copy, raw write, dump (left running but for the last one,
  // which kills the task for the restore below). BENCH_REPEAT=7 by default.
  // A first round is not counted. The worst noise here: the guest hands free
  // memory back to the host (virtio-balloon free page reporting, a sweep
  // ~2 s after memory is freed), and whatever then writes a GiB of page cache
  // pays to get it back: 1 GiB of plain 64 KiB writes takes 0.7 s after 3 s
  // idle, 0.25 s right after a GiB was freed; the same for dumps.
  const keep = <T>(xs: T[], x: T, i: number) => {
    if (i >= 0) xs.push(x);
  };
  const big = parseMaps(readFileSync(`/proc/${pid}/maps`, "utf8"))
    .filter((m) => m.inode === 0 && m.path === "")
    .sort((a, b) => b.end - b.start - (a.end - a.start))[0]!;
  // Plain writes of several sizes: the fastest one is the disk's speed (small
  // writes were faster and steadier than 4 MiB ones here).
  const writeSizes = [64 << 10, 256 << 10, 4 * MIB];
  const diskMsBySize = new Map<number, number[]>(writeSizes.map((s) => [s, []]));
  const copyMs: number[] = [], dumpMs: number[] = [], dumpWallMs: number[] = [], progressWallMs: number[] = [];
  const copied = big.end - big.start;
  type DumpJson = { pagesBytes: number; freezeMs: number; totalMs: number; peakRssKiB: number };
  const dumpOnce = (dir: string, leaveRunning: boolean): { json: DumpJson; wallMs: number } => {
    const t = performance.now();
    const d = spawnSync(CR, ["dump", "-t", String(pid), "-D", dir, "--no-sync", "--json", ...(leaveRunning ? ["--leave-running"] : [])], { encoding: "utf8" });
    const wallMs = performance.now() - t;
    if (d.status !== 0) throw new Error(`dump failed: ${d.stderr}`);
    return { json: JSON.parse(d.stdout) as DumpJson, wallMs };
  };
  // One measurement each; each round runs them in a new random order, so
  // that no periodic noise (the host's sweep) keeps hitting the same one.
  const steps: ((i: number) => void)[] = [
    (i) => {
      // Raw copy: the same memory pulled with process_vm_readv and thrown away.
      // The workload checks its memory all the time; stopped, it takes no CPU
      // or memory bandwidth from the raw measurements (the dump freezes it too).
      process.kill(pid, "SIGSTOP");
      const t = performance.now();
      const n = native.copyPages(pid, [{ addr: big.start, len: copied }]);
      keep(copyMs, performance.now() - t, i);
      process.kill(pid, "SIGCONT");
      if (n !== copied) throw new Error(`raw copy moved ${n} bytes, not ${copied}`);
    },
    ...writeSizes.map((size) => (i: number) => {
      // Raw disk write of the same amount (page cache, like --no-sync).
      process.kill(pid, "SIGSTOP");
      const buf = new Uint8Array(size).fill(0x5a);
      const f = join(work, "disk.tmp");
      const fd = openSync(f, "w");
      const t = performance.now();
      for (let done = 0; done < copied; done += buf.length) writeSync(fd, buf);
      keep(diskMsBySize.get(size)!, performance.now() - t, i);
      closeSync(fd);
      unlinkSync(f);
      process.kill(pid, "SIGCONT");
    }),
    (i) => {
      const dir = join(work, `images-${i}`);
      const d = dumpOnce(dir, true);
      keep(dumpWallMs, d.wallMs, i);
      keep(dumpMs, d.json.totalMs, i);
      rmSync(dir, { recursive: true, force: true });
    },
    (i) => {
      // The same dump on a terminal (script(1)), drawing its live progress line from the start.
      const dir = join(work, `images-tty-${i}`);
      const t = performance.now();
      const d = spawnSync("script", ["-qec", `${CR} dump -t ${pid} -D ${dir} --no-sync --leave-running`, "/dev/null"],
        { encoding: "utf8", env: { ...process.env, CR_TEST_PROGRESS_AFTER_MS: "0" } });
      keep(progressWallMs, performance.now() - t, i);
      if (d.status !== 0 || !d.stdout.includes("MiB/s")) throw new Error(`dump with progress failed: ${d.stdout}`);
      rmSync(dir, { recursive: true, force: true });
    },
  ];
  for (let i = -1; i < repeat; i++) {
    const order = steps.map((step) => ({ step, key: Math.random() })).sort((a, b) => a.key - b.key);
    for (const { step } of order) step(i);
  }
  // The last dump kills the task, for the restore below.
  const res = dumpOnce(images, false).json;
  const list = (xs: number[]) => (xs.length > 1 ? ` (median of ${xs.map((x) => x.toFixed(0)).join(", ")})` : "");
  const speed = (ms: number) => copied / MIB / (ms / 1000);
  const diskMs = Math.min(...writeSizes.map((s) => median(diskMsBySize.get(s)!)));
  const copyMBs = speed(median(copyMs)), diskMBs = speed(diskMs);
  rawMBs = Math.min(copyMBs, diskMBs);
  // The same comparison between the best run of each: what is left when the
  // host's noise misses a run (memory the host took back costs 3x to write to
  // again: 0.7 s instead of 0.25 s for 1 GiB, whatever writes it).
  const best = (xs: number[]) => Math.min(...xs);
  const bestRawMBs = Math.min(speed(best(copyMs)), Math.max(...writeSizes.map((s) => speed(best(diskMsBySize.get(s)!)))));
  row(`raw copy of ${(copied / MIB).toFixed(0)} MiB (process_vm_readv)`, `${median(copyMs).toFixed(0)} ms, ${copyMBs.toFixed(0)} MiB/s${list(copyMs)}`);
  for (const size of writeSizes) {
    const ms = diskMsBySize.get(size)!;
    row(`raw write to the same disk, ${size >> 10} KiB writes`, `${median(ms).toFixed(0)} ms, ${speed(median(ms)).toFixed(0)} MiB/s${list(ms)}`);
  }
  const dumpMBs = res.pagesBytes / MIB / (median(dumpMs) / 1000);
  row("dump (in-process time)", `${median(dumpMs).toFixed(0)} ms, ${dumpMBs.toFixed(0)} MiB/s${list(dumpMs)}`);
  const bestDumpMBs = res.pagesBytes / MIB / (best(dumpMs) / 1000);
  const pct = (base: number) => `${((100 * dumpMBs) / Math.min(copyMBs, base)).toFixed(0)} %`;
  row("dump / min(raw copy, fastest raw write)", `${pct(diskMBs)} (target >= 80 %); against each write size: ${
    writeSizes.map((size) => `${size >> 10} KiB ${pct(speed(median(diskMsBySize.get(size)!)))}`).join(", ")}`);
  row("the same, best run of each", `${((100 * bestDumpMBs) / bestRawMBs).toFixed(0)} % (dump ${best(dumpMs).toFixed(0)} ms; raw ${(copied / MIB / bestRawMBs * 1000).toFixed(0)} ms)`);
  row("dump (wall, incl. start-up)", `${median(dumpWallMs).toFixed(0)} ms${list(dumpWallMs)}`);
  row("dump on a terminal, with its progress line (wall, under script)", `${median(progressWallMs).toFixed(0)} ms${list(progressWallMs)}; ` +
    `best ${Math.min(...progressWallMs).toFixed(0)} ms against ${Math.min(...dumpWallMs).toFixed(0)} ms without`);
  row("freeze time (seize -> killed), last dump", `${res.freezeMs.toFixed(0)} ms`);
  row("dumper peak RSS, last dump", `${(res.peakRssKiB / 1024).toFixed(0)} MiB (target < 100 MiB)`);
  const imgBytes = readdirSync(images).reduce((a, n) => a + statSync(join(images, n)).size, 0);
  row("image size", `${(imgBytes / MIB).toFixed(0)} MiB`);

  while (existsSync(`/proc/${pid}`)) {
    await p.exited;
    Bun.sleepSync(5);
  }
  // Restored BENCH_REPEAT times (killed and reaped in between), after a warm-up.
  const restoreMs: number[] = [];
  for (let i = -1; i < repeat; i++) {
    const t = performance.now();
    const r = spawnSync(CR, ["restore", "-D", images, "-d"], { encoding: "utf8" });
    keep(restoreMs, performance.now() - t, i);
    if (r.status !== 0) throw new Error(`restore failed: ${r.stderr}`);
    process.kill(pid, "SIGKILL");
    while (existsSync(`/proc/${pid}`)) {
      try { native.wait(pid, native.WNOHANG); } catch { /* not ours */ }
      Bun.sleepSync(5);
    }
  }
  const restoreMed = median(restoreMs);
  row("restore (wall, incl. start-up and manifest check)", `${restoreMed.toFixed(0)} ms, ${(res.pagesBytes / MIB / (restoreMed / 1000)).toFixed(0)} MiB/s${list(restoreMs)}`);
} finally {
  if (pid && existsSync(`/proc/${pid}`)) {
    try {
      process.kill(pid, "SIGKILL");
      while (existsSync(`/proc/${pid}`)) {
        try { native.wait(pid, native.WNOHANG); } catch { /* not ours */ }
        Bun.sleepSync(5);
      }
    } catch { /* gone */ }
  }
  rmSync(work, { recursive: true, force: true });
}

// A tree: 64 processes with 16 MiB each (BENCH_TREE_N, BENCH_TREE_MIB).
const treeN = Number(process.env.BENCH_TREE_N ?? 64);
const treeMiB = Number(process.env.BENCH_TREE_MIB ?? 16);
const treeWork = mkdtempSync(join(process.env.BENCH_DIR ?? "/tmp", "cr-bench-tree-"));
let treePids: number[] = [];
const gone = (pids: number[]) => {
  const deadline = Date.now() + 20_000;
  while (pids.some((p) => existsSync(`/proc/${p}`)) && Date.now() < deadline) {
    for (const p of pids) {
      try { native.wait(p, native.WNOHANG); } catch { /* not ours (yet) */ }
    }
    Bun.sleepSync(5);
  }
};
try {
  const app = join(treeWork, "app");
  const images = join(treeWork, "images");
  spawnSync("mkdir", ["-p", app]);
  Bun.spawn([join(ROOT, "test/workloads/bin/forktree"), app, String(treeN), String(treeMiB)], { stdio: ["ignore", "ignore", "ignore"] });
  while (!existsSync(join(app, "ready"))) Bun.sleepSync(20);
  treePids = readFileSync(join(app, "pids"), "utf8").trim().split(/\s+/).map(Number);
  type TreeJson = { tasks: number; pagesBytes: number; totalMs: number; freezeMs: number };
  const treeDump = (dir: string, leaveRunning: boolean): TreeJson => {
    const d = spawnSync(CR, ["dump", "-t", String(treePids[0]), "-D", dir, "--no-sync", "--json", ...(leaveRunning ? ["-R"] : [])], { encoding: "utf8" });
    if (d.status !== 0) throw new Error(`tree dump failed: ${d.stderr}`);
    return JSON.parse(d.stdout) as TreeJson;
  };
  // Like the big dump: a warm-up, BENCH_REPEAT dumps with -R (the median
  // counts), then the one that kills the tree for the restore.
  const treeMs: number[] = [];
  for (let i = -1; i < repeat; i++) {
    const dir = join(treeWork, `images-${i}`);
    const ms = treeDump(dir, true).totalMs;
    if (i >= 0) treeMs.push(ms);
    rmSync(dir, { recursive: true, force: true });
  }
  const res = { ...treeDump(images, false), totalMs: median(treeMs) };
  row(`tree dump: ${res.tasks} tasks x ${treeMiB} MiB`, `${res.totalMs.toFixed(0)} ms (${(res.totalMs / res.tasks).toFixed(1)} ms/task, ${(res.pagesBytes / MIB / (res.totalMs / 1000)).toFixed(0)} MiB/s; median of ${treeMs.map((x) => x.toFixed(0)).join(", ")})`);
  // Per-task overhead: what the tree costs beyond moving its pages at the raw speed measured above.
  const pagesMs = rawMBs > 0 ? (res.pagesBytes / MIB / rawMBs) * 1000 : 0;
  const overhead = (ms: number) => `${((ms - pagesMs) / res.tasks).toFixed(1)} ms/task (target < 5 ms)`;
  row("tree dump per-task overhead (beyond its pages at min(raw copy, raw write))", overhead(res.totalMs));
  row("tree freeze time, last dump", `${res.freezeMs.toFixed(0)} ms`);
  gone(treePids);
  const t = performance.now();
  const r = spawnSync(CR, ["restore", "-D", images, "-d"], { encoding: "utf8" });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`tree restore failed: ${r.stderr}`);
  row("tree restore (wall, incl. start-up)", `${ms.toFixed(0)} ms (${(ms / res.tasks).toFixed(1)} ms/task)`);
  row("tree restore per-task overhead (beyond start-up and its pages at that speed)", overhead(ms - startupMs));
} finally {
  for (const p of treePids) {
    try { process.kill(p, "SIGKILL"); } catch { /* gone */ }
  }
  gone(treePids);
  rmSync(treeWork, { recursive: true, force: true });
}

const w = Math.max(...rows.map((r) => r[0].length));
console.log(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n"));

// `cr show` on a real image set: a sleeper dumped with -R, whose /proc view
// (maps, fds) is compared with what show prints and what --json holds.
import { afterEach, expect, test } from "bun:test";
import { readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanup, cr, readProgress, startWorkload, tempDir, waitFor } from "../helpers/procs.ts";
import { parseMaps } from "../../src/proc/maps.ts";
import { size } from "../../src/show/names.ts";

afterEach(cleanup);

interface ShowJson {
  inventory: { rootPid: number; pageSize: number };
  tree: { tasks: { pid: number; threads: number[] }[] };
  files: { files: { id: number; kind: string; path: string; pos: number }[] };
  manifest: { files: { name: string; size: number }[] };
  tasks: {
    pid: number;
    comm: string;
    threads: { tid: number; regs: Record<string, string>; xstate: { bytes: number }; sigmask: string }[];
    mm: { vmas: { start: number; end: number; kind: string; path?: string; prot: number }[] };
    fds: { fd: number; fileId: number }[];
    pagemap: { start: number; end: number; pages: number; offset: number }[];
    pagesSize: number;
  }[];
}

/** A sleeper dumped with -R (still running), with its maps and fds as /proc says now. */
function dumpedSleeper() {
  const w = startWorkload("sleeper");
  waitFor(() => readProgress(w.dir) >= 2, 10_000, "progress");
  const images = tempDir("cr-show-");
  const d = cr(["dump", "-R", "-t", String(w.pid), "-D", images]);
  expect(d.stderr).toBe("");
  expect(d.status).toBe(0);
  const maps = parseMaps(readFileSync(`/proc/${w.pid}/maps`, "utf8")).filter((m) => m.path !== "[vsyscall]");
  const fds = readdirSync(`/proc/${w.pid}/fd`).map(Number).sort((a, b) => a - b)
    .flatMap((fd) => {
      try {
        return [{ fd, path: readlinkSync(`/proc/${w.pid}/fd/${fd}`) }];
      } catch {
        return []; // closed in between: a transient fd
      }
    })
    // The running sleeper briefly holds DIR/.tmp while it writes a report:
    // not part of what was dumped before.
    .filter((f) => !f.path.endsWith("/.tmp"));
  return { pid: w.pid, images, maps, fds };
}

const lines = (s: string) => s.trim().split("\n");

test("text: pid, tree, every VMA with its size, every fd with its path", () => {
  const { pid, images, maps, fds } = dumpedSleeper();
  const r = cr(["show", images]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  expect(r.stdout).toContain(`root pid ${pid}`);
  expect(r.stdout).toContain(`task ${pid} (sleeper)`);
  expect(r.stdout).toContain("manifest: 6 files, xxh3-128, not verified");
  const out = lines(r.stdout);
  for (const m of maps) {
    const row = out.find((l) => l.trim().startsWith(`0x${m.start.toString(16)}  0x${m.end.toString(16)} `));
    expect(row, `VMA ${m.start.toString(16)}-${m.end.toString(16)} ${m.path}`).toBeDefined();
    if (m.path.startsWith("/")) expect(row!.endsWith(m.path)).toBe(true);
    const perms = `${m.read ? "r" : "-"}${m.write ? "w" : "-"}${m.exec ? "x" : "-"}`;
    expect(row!.split(/\s+/)).toContain(perms);
    expect(row).toContain(` ${size(m.end - m.start)} `);
  }
  const vmaRows = out.filter((l) => /^\s+0x[0-9a-f]+\s+0x[0-9a-f]+\s/.test(l));
  expect(vmaRows.length).toBe(maps.length);
  expect(r.stdout).toContain(`fds: ${fds.length}`);
  for (const { fd, path } of fds) {
    expect(out.some((l) => l.trim().startsWith(`${fd} `) && l.endsWith(path))).toBe(true);
  }
  // The sleeper inherits ignored signals from whoever started the tests (CI does ignore some).
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const mask = (k: string) => BigInt(`0x${new RegExp(`${k}:\\s+([0-9a-f]+)`).exec(status)![1]}`);
  const nonDefault = mask("SigIgn") | mask("SigCgt");
  if (nonDefault === 0n) expect(r.stdout).toContain("(all default)");
  else {
    const handlers = r.stdout.slice(r.stdout.indexOf("signals with a handler:")).split("\n").slice(2).filter((l) => /^\s+SIG/.test(l));
    let n = 0;
    for (let b = nonDefault; b > 0n; b >>= 1n) n += Number(b & 1n);
    expect(handlers.length).toBe(n);
  }
});

test("--json: the full records agree with /proc and the pages file", () => {
  const { pid, images, maps, fds } = dumpedSleeper();
  const r = cr(["show", images, "--json"]);
  expect(r.status).toBe(0);
  const j = JSON.parse(r.stdout) as ShowJson;
  expect(j.inventory.rootPid).toBe(pid);
  expect(j.tree.tasks.map((t) => t.pid)).toEqual([pid]);
  const t = j.tasks[0]!;
  expect(t.pid).toBe(pid);
  expect(t.comm).toBe("sleeper");
  expect(t.mm.vmas.map((v) => [v.start, v.end])).toEqual(maps.map((m) => [m.start, m.end]));
  expect(t.mm.vmas.map((v) => v.path ?? "")).toEqual(maps.map((m) => (m.path.startsWith("/") ? m.path : "")));
  expect(t.fds.map((f) => f.fd)).toEqual(fds.map((f) => f.fd));
  const byId = new Map(j.files.files.map((f) => [f.id, f]));
  expect(t.fds.map((f) => byId.get(f.fileId)?.path)).toEqual(fds.map((f) => f.path));
  // Page runs as ranges, covering exactly the pages file, each inside a VMA.
  const pagesSize = statSync(join(images, `pages-${pid}.img`)).size;
  expect(t.pagesSize).toBe(pagesSize);
  expect(t.pagemap.reduce((a, e) => a + e.pages, 0) * 4096).toBe(pagesSize);
  for (const e of t.pagemap) {
    expect(e.end - e.start).toBe(e.pages * 4096);
    expect(maps.some((m) => m.start <= e.start && e.end <= m.end)).toBe(true);
  }
  // Registers by name; the stack pointer is inside the [stack] VMA (sleeper is in nanosleep).
  const th = t.threads[0]!;
  expect(th.tid).toBe(pid);
  expect(Object.keys(th.regs).length).toBe(27);
  const rsp = Number(BigInt(th.regs.rsp!));
  const stack = maps.find((m) => m.path === "[stack]")!;
  expect(rsp >= stack.start && rsp < stack.end).toBe(true);
  expect(th.xstate.bytes).toBeGreaterThanOrEqual(576);
  expect(th.sigmask).toMatch(/^\d+$/);
  // Never page contents: the whole JSON stays far below the pages file.
  expect(r.stdout.length).toBeLessThan(200_000);
  expect(r.stdout).not.toMatch(/[0-9a-f]{200}/);
});

test("--regs, single files, --verify", () => {
  const { pid, images } = dumpedSleeper();
  const rip = (JSON.parse(cr(["show", images, "--json"]).stdout) as ShowJson).tasks[0]!.threads[0]!.regs.rip!;
  const regs = cr(["show", images, "--regs"]);
  expect(regs.status).toBe(0);
  expect(regs.stdout).toMatch(new RegExp(`rip ${BigInt(rip).toString(16).padStart(16, "0")}`));

  const pages = cr(["show", join(images, `pages-${pid}.img`)]);
  expect(pages.status).toBe(0);
  const size = statSync(join(images, `pages-${pid}.img`)).size;
  expect(pages.stdout).toContain(`pages-${pid}.img: ${size} bytes`);
  const task = cr(["show", join(images, `task-${pid}.cbor`), "--json"]);
  expect(task.status).toBe(0);
  expect((JSON.parse(task.stdout) as { pid: number }).pid).toBe(pid);
  const tree = cr(["show", join(images, "tree.cbor")]);
  expect(tree.stdout).toMatch(new RegExp(`^\\s+${pid}\\s`, "m"));
  const other = cr(["show", join(images, "notes.txt")]);
  expect(other.status).not.toBe(0);

  const ok = cr(["show", images, "--verify"]);
  expect(ok.status).toBe(0);
  expect(ok.stdout).toContain("xxh3-128, verified");
  // One flipped byte in the pages: only the hash can tell.
  const p = join(images, `pages-${pid}.img`);
  const b = readFileSync(p);
  b[100] = b[100]! ^ 1;
  writeFileSync(p, b);
  expect(cr(["show", images]).status).toBe(0);
  const bad = cr(["show", images, "--verify"]);
  expect(bad.status).toBe(1);
  expect(lines(bad.stderr)).toEqual([`cr: image: pages-${pid}.img: content does not match the manifest (corrupted)`]);
});

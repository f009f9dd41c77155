// Hostile images: one real image set (a sleeper holding a deleted file, so
// with a ghost file, dumped once with -R), corrupted in thousands of ways.
// The in-process readers (show, and restore's loadImages) must fail only with
// a CrError, and must fail whenever the corruption is detectable; a sample
// goes through dist/cr show and dist/cr restore, which must exit non-zero
// with one "cr: " line, no signal, no "internal error", and (restore) no
// process at the dumped pid.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import {
  chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { Decoder, Encoder } from "cbor-x";
import { CrError } from "../../src/errors.ts";
import * as img from "../../src/images/index.ts";
import { show } from "../../src/show/index.ts";
import { loadImages } from "../../src/restore/index.ts";
import { CR, cleanup, readProgress, tempDir, track, waitFor, waitGone } from "../helpers/procs.ts";

type Content = Uint8Array | { symlinkTo: string } | "dir" | "fifo" | null;
interface Variant {
  name: string;
  changes: [string, Content][];
  /** Rewrite manifest.cbor to match, so the corruption reaches the decoders. */
  rewrite: boolean;
  /** Detectable: show --verify and restore's loader must refuse it. */
  expectFail: boolean;
  dirMode?: number;
}

const SLEEPER = join(import.meta.dir, "../workloads/bin/sleeper");
const exeOf = (p: number) => {
  try {
    return readlinkSync(`/proc/${p}/exe`);
  } catch {
    return null;
  }
};
let pid = 0;
/** Every pid and tid of the dump (its tree): a refused restore must leave none of them existing. */
let dumpedTids: number[] = [];
let base = "";
let scratch = "";
let orig = new Map<string, Uint8Array>();
afterAll(cleanup);

beforeAll(() => {
  // A sleeper holding a deleted file, so that the set has a ghost file too.
  const dir = tempDir("cr-hostile-sleeper-");
  const p = Bun.spawn(["sh", "-c", `echo ghost data > "${dir}/gone" && exec 3<"${dir}/gone" && rm "${dir}/gone" && exec "${SLEEPER}" "${dir}"`], {
    stdio: ["ignore", "ignore", "ignore"],
  });
  track(p.pid);
  const w = { pid: p.pid, dir };
  waitFor(() => readProgress(w.dir) >= 2, 10_000, "progress");
  base = tempDir("cr-hostile-base-");
  const d = spawnSync(CR, ["dump", "-R", "--no-sync", "-t", String(w.pid), "-D", base], { encoding: "utf8", timeout: 60_000 });
  if (d.status !== 0) throw new Error(`dump failed: ${d.stderr}`);
  pid = w.pid;
  // The restore variants check the pids of the dump: they must be the sleeper's, and only its.
  const tasks = img.decodeImage("tree", img.readImageFile(base, img.TREE), img.TREE).tasks;
  dumpedTids = tasks.flatMap((t) => t.threads);
  if (JSON.stringify(tasks.map((t) => t.pid)) !== JSON.stringify([pid]) || JSON.stringify(dumpedTids) !== JSON.stringify([pid])) {
    throw new Error(`the dump of sleeper ${pid} has tasks ${JSON.stringify(tasks.map((t) => [t.pid, t.threads]))}, expected only ${pid}`);
  }
  // Restore variants need the pid free: the original is killed and gone first.
  process.kill(pid, "SIGKILL");
  waitGone(pid);
  orig = new Map(readdirSync(base).map((n) => [n, new Uint8Array(readFileSync(join(base, n)))]));
  scratch = join(tempDir("cr-hostile-"), "images");
  cpSync(base, scratch, { recursive: true });
});

// --- CBOR structure of a file: item boundaries and length headers ----------
interface Header { at: number; len: number; major: number }

/** Walk one CBOR item at `o`; push item starts/ends and headers; return the end. */
function walk(b: Uint8Array, o: number, bounds: Set<number>, headers: Header[]): number {
  bounds.add(o);
  const ib = b[o]!;
  const major = ib >> 5;
  const ai = ib & 31;
  let arg = ai;
  let hl = 1;
  if (ai >= 24 && ai <= 27) {
    hl = 1 + (1 << (ai - 24));
    arg = 0;
    for (let i = 1; i < hl; i++) arg = arg * 256 + b[o + i]!;
  }
  headers.push({ at: o, len: hl, major });
  let end = o + hl;
  if (major === 2 || major === 3) end += arg;
  else if (major === 4) for (let i = 0; i < arg; i++) end = walk(b, end, bounds, headers);
  else if (major === 5) for (let i = 0; i < 2 * arg; i++) end = walk(b, end, bounds, headers);
  else if (major === 6) end = walk(b, end, bounds, headers);
  bounds.add(end);
  return end;
}

const METADATA = () => [...orig.keys()].filter((n) => n.endsWith(".cbor"));
const pseudo = (() => {
  let s = 0x9e3779b9;
  return () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8);
})();

// --- variant generators -----------------------------------------------------
function truncations(): Variant[] {
  const out: Variant[] = [];
  for (const name of METADATA()) {
    const b = orig.get(name)!;
    const bounds = new Set<number>();
    walk(b, 0, bounds, []);
    const step = b.length > 2000 ? 3 : 1;
    const offsets = new Set([...bounds].filter((o) => o < b.length));
    for (let o = 0; o < b.length; o += step) offsets.add(o);
    for (const o of offsets) {
      out.push({ name: `truncate ${name} at ${o}`, changes: [[name, b.subarray(0, o)]], rewrite: name !== img.MANIFEST, expectFail: true });
    }
    out.push({ name: `truncate ${name} (manifest kept)`, changes: [[name, b.subarray(0, b.length >> 1)]], rewrite: false, expectFail: true });
  }
  const pages = img.pagesFile(pid);
  const pb = orig.get(pages)!;
  for (const o of [0, 1, 4095, 4096, 8192, pb.length - 4096, pb.length - 1]) {
    out.push({ name: `truncate ${pages} at ${o}`, changes: [[pages, pb.subarray(0, o)]], rewrite: true, expectFail: true });
  }
  out.push({ name: `extend ${pages} by a page`, changes: [[pages, new Uint8Array([...pb, ...new Uint8Array(4096)])]], rewrite: true, expectFail: true });
  return out;
}

function bitFlips(): Variant[] {
  const out: Variant[] = [];
  for (const name of [...orig.keys()]) {
    const b = orig.get(name)!;
    const n = name.endsWith(".img") ? 40 : Math.min(b.length, 400);
    for (let i = 0; i < n; i++) {
      const pos = b.length <= 400 && !name.endsWith(".img") ? i : pseudo() % b.length;
      const c = b.slice();
      c[pos] = c[pos]! ^ (1 << (pseudo() % 8));
      // With the manifest kept only the hash can tell; rewritten, the decoders decide.
      // A flip in manifest.cbor's own minor version (key or value) changes nothing that matters.
      const inert = name === img.MANIFEST && sameButMinor(b, c);
      out.push({ name: `flip ${name}[${pos}]`, changes: [[name, c]], rewrite: false, expectFail: !inert });
      if (name !== img.MANIFEST) out.push({ name: `flip ${name}[${pos}] + manifest`, changes: [[name, c]], rewrite: true, expectFail: false });
    }
  }
  return out;
}

/** Both decode to the same envelope, apart from version.minor. */
function sameButMinor(a: Uint8Array, b: Uint8Array): boolean {
  const norm = (x: Uint8Array) => {
    try {
      const e = decoder.decode(x) as Record<string, unknown>;
      const v = e.version as Record<string, unknown> | undefined;
      return Bun.deepEquals(Object.keys(e).sort(), ["body", "kind", "magic", "version"]) && v
        ? JSON.stringify({ ...e, version: v.major }, (_, y: unknown) => (typeof y === "bigint" ? y.toString() : y))
        : undefined;
    } catch {
      return undefined;
    }
  };
  const na = norm(a);
  return na !== undefined && na === norm(b);
}

function swaps(): Variant[] {
  const out: Variant[] = [];
  const names = [...orig.keys()].filter((n) => n !== img.MANIFEST);
  for (const a of names) {
    for (const b of names) {
      if (a >= b) continue;
      const ch: [string, Content][] = [[a, orig.get(b)!], [b, orig.get(a)!]];
      out.push({ name: `swap ${a} <-> ${b}`, changes: ch, rewrite: true, expectFail: true });
      out.push({ name: `swap ${a} <-> ${b} (manifest kept)`, changes: ch, rewrite: false, expectFail: true });
    }
  }
  return out;
}

function hugeLengths(): Variant[] {
  const out: Variant[] = [];
  const huge: number[][] = [
    [0x1a, 0xff, 0xff, 0xff, 0xff], [0x1b, 0x00, 0x20, 0, 0, 0, 0, 0, 0], [0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    [0x19, 0xff, 0xff], [0x1f],
  ];
  for (const name of METADATA()) {
    const b = orig.get(name)!;
    const headers: Header[] = [];
    walk(b, 0, new Set(), headers);
    const sized = headers.filter((h) => h.major >= 2 && h.major <= 5);
    const pick = sized.length > 120 ? sized.filter((_, i) => i % Math.ceil(sized.length / 120) === 0) : sized;
    for (const h of pick) {
      for (const [k, tail] of huge.entries()) {
        const hdr = [(h.major << 5) | tail[0]!, ...tail.slice(1)];
        const c = new Uint8Array([...b.subarray(0, h.at), ...hdr, ...b.subarray(h.at + h.len)]);
        out.push({ name: `huge length ${k} at ${name}[${h.at}]`, changes: [[name, c]], rewrite: name !== img.MANIFEST, expectFail: k !== 4 });
      }
    }
  }
  return out;
}

const decoder = new Decoder({ useRecords: false, mapsAsObjects: true, int64AsType: "bigint" } as ConstructorParameters<typeof Decoder>[0]);
const encoder = new Encoder({ useRecords: false, mapsAsObjects: true, largeBigIntToFloat: false });
const category = (v: unknown) =>
  v === null || v === undefined ? "null" : typeof v === "bigint" ? "int" : typeof v === "number" ? (Number.isSafeInteger(v) ? "int" : "float")
    : v instanceof Uint8Array ? "bytes" : Array.isArray(v) ? "array" : typeof v;
const WRONG: unknown[] = ["x", -1, 1.5, [], {}, true, null, 2n ** 70n, new Uint8Array(3)];

/** Every leaf and container path of a decoded value (arrays: first items only). */
function paths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  const out = at.length ? [at] : [];
  if (Array.isArray(v)) v.slice(0, 2).forEach((x, i) => out.push(...paths(x, [...at, i])));
  else if (v && typeof v === "object" && !(v instanceof Uint8Array)) for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
  return out;
}

function setPath(root: unknown, p: (string | number)[], value: unknown): unknown {
  const copy = decoder.decode(encoder.encode(root)) as Record<string | number, unknown>;
  let o = copy;
  for (const k of p.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
  o[p[p.length - 1]!] = value;
  return copy;
}

function wrongTypes(): Variant[] {
  const out: Variant[] = [];
  for (const name of METADATA().filter((n) => n !== img.MANIFEST)) {
    const env = decoder.decode(orig.get(name)!) as Record<string, unknown>;
    let all = paths(env);
    if (all.length > 150) all = all.filter((_, i) => i % Math.ceil(all.length / 150) === 0);
    for (const p of all) {
      let cur: unknown = env;
      for (const k of p) cur = (cur as Record<string | number, unknown>)[k];
      for (const w of WRONG) {
        // Which fields are optional is the schema's business: null is never expected to fail.
        const differs = category(w) !== category(cur) && category(w) !== "null" && category(cur) !== "null";
        // A record where an array is wanted is accepted by nothing; the reverse neither.
        out.push({
          name: `${name}: ${p.join(".")} = ${String(w)}`, changes: [[name, encoder.encode(setPath(env, p, w))]],
          rewrite: true, expectFail: differs && p[0] !== "version" || p[0] === "magic" || p[0] === "kind",
        });
      }
    }
    const env2 = (patch: Record<string, unknown>) => encoder.encode({ ...env, ...patch });
    const add = (what: string, patch: Record<string, unknown>, expectFail: boolean) =>
      out.push({ name: `${name}: ${what}`, changes: [[name, env2(patch)]], rewrite: true, expectFail });
    add("major version 2", { version: { major: 2, minor: 0 } }, true);
    add("major version 0", { version: { major: 0, minor: 9 } }, true);
    add("no version", { version: undefined }, true);
    add("other magic", { magic: "criu" }, true);
    add("body is an array", { body: [1, 2, 3] }, true);
    add("body is bytes", { body: new Uint8Array(8) }, true);
    // Positive controls: a newer minor version and unknown fields must be accepted.
    add("minor version 99, unknown fields", {
      version: { major: 1, minor: 99 }, future: { x: 1 },
      body: { ...(env.body as Record<string, unknown>), addedInV1_99: [1, "two"] },
    }, false);
    out.push({ name: `${name}: not CBOR at all`, changes: [[name, new TextEncoder().encode("hello, world\n")]], rewrite: true, expectFail: true });
    out.push({ name: `${name}: empty`, changes: [[name, new Uint8Array(0)]], rewrite: true, expectFail: true });
  }
  return out;
}

function semantic(): Variant[] {
  // Records that type-check but make no sense (or no sense together).
  const out: Variant[] = [];
  const taskName = img.taskFile(pid);
  const env = decoder.decode(orig.get(taskName)!) as { body: Record<string, unknown> };
  const edit = (what: string, p: (string | number)[], v: unknown, file = taskName) => {
    const e = decoder.decode(orig.get(file)!);
    out.push({ name: `${file}: ${what}`, changes: [[file, encoder.encode(setPath(e, p, v))]], rewrite: true, expectFail: true });
  };
  const action = (sig: number) => ({ sig, handler: 1, flags: 0, restorer: 0, mask: 0n });
  edit("sig 0", ["body", "sigactions"], [action(0)]);
  edit("sig 65", ["body", "sigactions"], [action(65)]);
  edit("sig 2^40", ["body", "sigactions"], [action(2 ** 40)]);
  edit("sig twice", ["body", "sigactions"], [action(10), action(10)]);
  const timer = (id: number, notify: number, tid: number) => ({
    id, clockId: 1, signo: 14, notify, tid, sival: 0n, intervalNs: 0n, valueNs: 1000n, overrun: 0,
  });
  edit("POSIX timer id twice", ["body", "posixTimers"], [timer(3, 0, 0), timer(3, 0, 0)]);
  edit("POSIX timer to a thread not in the task", ["body", "posixTimers"], [timer(3, 4, pid + 1)]);
  edit("POSIX timer with an unknown sigev_notify", ["body", "posixTimers"], [timer(3, 9, 0)]);
  edit("regs 0 bytes", ["body", "threads", 0, "regs"], new Uint8Array(0));
  edit("regs 215 bytes", ["body", "threads", 0, "regs"], new Uint8Array(215));
  edit("xstate 0 bytes", ["body", "threads", 0, "xstate"], new Uint8Array(0));
  edit("xstate 1 MiB", ["body", "threads", 0, "xstate"], new Uint8Array(1 << 20));
  edit("pending siginfo of 3 bytes", ["body", "threads", 0, "pending"], [new Uint8Array(3)]);
  edit("no threads", ["body", "threads"], []);
  edit("other tid", ["body", "threads", 0, "tid"], pid + 1);
  edit("other pid", ["body", "pid"], pid + 1);
  edit("duplicate fd", ["body", "fds", 1, "fd"], 0);
  edit("fd to a missing file", ["body", "fds", 0, "fileId"], 999);
  edit("fd 2^31", ["body", "fds", 0, "fd"], 2 ** 31);
  edit("auxv of 7 bytes", ["body", "mm", "auxv"], new Uint8Array(7));
  edit("umask 0o7777", ["body", "umask"], 0o7777);
  const vmas = (env.body.mm as { vmas: { start: number; end: number }[] }).vmas;
  edit("vma inverted", ["body", "mm", "vmas", 0, "end"], vmas[0]!.start);
  edit("vma unaligned", ["body", "mm", "vmas", 0, "start"], vmas[0]!.start + 1);
  edit("vma overlapping", ["body", "mm", "vmas", 1, "start"], vmas[0]!.start);
  edit("vma above user space", ["body", "mm", "vmas", vmas.length - 1, "end"], 2 ** 52);
  edit("vma prot 8", ["body", "mm", "vmas", 0, "prot"], 8);
  edit("file vma without path", ["body", "mm", "vmas", 0, "path"], null);
  const pm = img.pagemapFile(pid);
  edit("run outside every vma", ["body", "entries", 0, "start"], 0x1000, pm);
  edit("run unaligned", ["body", "entries", 0, "start"], 0x1001, pm);
  edit("empty run", ["body", "entries", 0, "pages"], 0, pm);
  edit("run of 2^50 pages", ["body", "entries", 0, "pages"], 2 ** 50, pm);
  edit("wrong offset", ["body", "entries", 1, "offset"], 0, pm);
  edit("no entries", ["body", "entries"], [], pm);
  edit("page size 0", ["body", "pageSize"], 0, img.INVENTORY);
  edit("page size 12345", ["body", "pageSize"], 12345, img.INVENTORY);
  edit("root pid not in tree", ["body", "rootPid"], pid + 7, img.INVENTORY);
  edit("arch", ["body", "arch"], "aarch64", img.INVENTORY);
  edit("empty tree", ["body", "tasks"], [], img.TREE);
  edit("task without its file", ["body", "tasks", 0, "pid"], pid + 1, img.TREE);
  edit("threads without the pid", ["body", "tasks", 0, "threads"], [pid + 1], img.TREE);
  edit("duplicate file id", ["body", "files", 1, "id"], 1, img.FILES);
  const ghostFd = (decoder.decode(orig.get(img.FILES)!) as { body: img.FilesImage }).body.files.findIndex((f) => f.ghostId !== undefined);
  edit("fd on a missing ghost", ["body", "files", ghostFd, "ghostId"], 7, img.FILES);
  edit("ghost path with ..", ["body", "ghosts", 0, "path"], "/tmp/../etc/gone", img.FILES);
  edit("ghost path relative", ["body", "ghosts", 0, "path"], "tmp/gone", img.FILES);
  edit("ghost of a directory", ["body", "ghosts", 0, "mode"], 0o40755, img.FILES);
  edit("ghost smaller than its pages", ["body", "ghosts", 0, "size"], 0, img.FILES);
  edit("ghost pages beyond its image", ["body", "ghosts", 0, "pages", 0, "pages"], 2, img.FILES);
  edit("ghost id twice", ["body", "ghosts", 1], { id: 1, path: "/x", size: 0, mode: 0o100600, uid: 0, gid: 0, mtimeNs: 0n, pages: [] }, img.FILES);
  edit("exe on a missing ghost", ["body", "exeGhostId"], 3);
  const ghostImg = img.ghostFile(1);
  out.push({ name: `truncate ${ghostImg} + manifest`, changes: [[ghostImg, orig.get(ghostImg)!.subarray(0, 100)]], rewrite: true, expectFail: true });
  out.push({ name: `extend ${ghostImg} + manifest`, changes: [[ghostImg, new Uint8Array([...orig.get(ghostImg)!, ...new Uint8Array(4096)])]], rewrite: true, expectFail: true });
  edit("empty path", ["body", "files", 0, "path"], "", img.FILES);
  const mf = decoder.decode(orig.get(img.MANIFEST)!);
  out.push({ name: "manifest: unknown hash", changes: [[img.MANIFEST, encoder.encode(setPath(mf, ["body", "hashAlg"], "md5"))]], rewrite: false, expectFail: true });
  out.push({ name: "manifest: ../ name", changes: [[img.MANIFEST, encoder.encode(setPath(mf, ["body", "files", 0, "name"], "../inventory.cbor"))]], rewrite: false, expectFail: true });
  out.push({ name: "manifest: huge size", changes: [[img.MANIFEST, encoder.encode(setPath(mf, ["body", "files", 0, "size"], 2 ** 52))]], rewrite: false, expectFail: true });
  return out;
}

function layout(): Variant[] {
  const out: Variant[] = [];
  const copy = join(tempDir("cr-hostile-elsewhere-"), "copy");
  for (const name of orig.keys()) {
    out.push({ name: `missing ${name}`, changes: [[name, null]], rewrite: false, expectFail: true });
    if (name !== img.MANIFEST) out.push({ name: `missing ${name} + manifest`, changes: [[name, null]], rewrite: true, expectFail: true });
    out.push({ name: `symlink for ${name}`, changes: [[name, { symlinkTo: join(base, name) }]], rewrite: false, expectFail: true });
    out.push({ name: `dangling symlink for ${name}`, changes: [[name, { symlinkTo: copy }]], rewrite: false, expectFail: true });
    out.push({ name: `directory for ${name}`, changes: [[name, "dir"]], rewrite: false, expectFail: true });
    out.push({ name: `fifo for ${name}`, changes: [[name, "fifo"]], rewrite: false, expectFail: true });
  }
  for (const extra of ["extra.cbor", ".hidden", `task-${pid + 1}.cbor`, "pages-1.img"]) {
    out.push({ name: `extra ${extra}`, changes: [[extra, orig.get(img.TREE)!]], rewrite: false, expectFail: true });
    out.push({ name: `extra ${extra} + manifest`, changes: [[extra, orig.get(img.TREE)!]], rewrite: true, expectFail: false });
  }
  out.push({ name: "extra directory", changes: [["sub", "dir"]], rewrite: false, expectFail: true });
  out.push({ name: "pristine, dir mode 0777", changes: [], rewrite: false, expectFail: false, dirMode: 0o777 });
  return out;
}

// --- running a variant -----------------------------------------------------
// scratch holds the pristine set between variants: each variant changes a few
// entries, which revert() puts back.
let touched: string[] = [];

function revert(): void {
  chmodSync(scratch, 0o700);
  for (const name of touched) {
    rmSync(join(scratch, name), { recursive: true, force: true });
    const o = orig.get(name);
    if (o) writeFileSync(join(scratch, name), o, { mode: 0o600 });
  }
  touched = [];
}

function materialize(v: Variant): void {
  revert();
  for (const [name, c] of v.changes) {
    const p = join(scratch, name);
    touched.push(name);
    rmSync(p, { recursive: true, force: true });
    if (c === null) continue;
    if (c instanceof Uint8Array) writeFileSync(p, c, { mode: 0o600 });
    else if (c === "dir") mkdirSync(p);
    else if (c === "fifo") spawnSync("mkfifo", ["-m", "600", p]);
    else symlinkSync(c.symlinkTo, p);
  }
  if (v.rewrite) {
    touched.push(img.MANIFEST);
    img.writeManifest(scratch, readdirSync(scratch).filter((n) => n !== img.MANIFEST), { sync: false });
  }
  if (v.dirMode !== undefined) chmodSync(scratch, v.dirMode);
}

type Outcome = "ok" | "refused" | string;
function attempt(f: () => unknown): Outcome {
  try {
    f();
    return "ok";
  } catch (e) {
    if (e instanceof CrError) {
      const line = e.oneLine();
      return line.includes("\n") || line.length === 0 ? `multi-line CrError: ${JSON.stringify(line)}` : "refused";
    }
    return `non-CrError ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
  }
}

function checkSpawn(args: string[], what: string, problems: string[]): void {
  const r = spawnSync(CR, args, { encoding: "utf8", timeout: 15_000 });
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  if (r.error || r.signal) problems.push(`${what}: ${r.error?.message ?? ""} signal ${r.signal}`);
  else if (r.status === 0) problems.push(`${what}: exit 0`);
  else if (lines.length !== 1 || !lines[0]!.startsWith("cr: ") || lines[0]!.includes("internal error")) {
    problems.push(`${what}: stderr ${JSON.stringify(r.stderr)}`);
  }
}

test("thousands of corrupted image sets are refused cleanly", () => {
  const variants = [...truncations(), ...bitFlips(), ...swaps(), ...hugeLengths(), ...wrongTypes(), ...semantic(), ...layout()];
  const problems: string[] = [];
  const counts = {
    variants: variants.length, expectFail: 0, compatible: 0, showRefused: 0, showAccepted: 0, loadAccepted: 0, spawnedShow: 0, spawnedRestore: 0,
  };
  const restoreEvery = Math.max(1, Math.floor(variants.length / 300));
  const showEvery = Math.max(1, Math.floor(variants.length / 200));
  const t0 = performance.now();
  variants.forEach((v, i) => {
    materialize(v);
    const verified = attempt(() => show(scratch, { verify: true, json: false, regs: true }));
    const unverified = attempt(() => show(scratch, { verify: false, json: true, regs: false }));
    const loaded = attempt(() => loadImages(scratch).checkPages());
    for (const [what, o] of [["show --verify", verified], ["show --json", unverified], ["restore load", loaded]] as const) {
      if (o !== "ok" && o !== "refused") problems.push(`${v.name}: ${what}: ${o}`);
    }
    if (v.expectFail && verified !== "refused") problems.push(`${v.name}: show --verify accepted it`);
    if ((v.expectFail || verified === "refused") && loaded !== "refused") problems.push(`${v.name}: restore's loader accepted it`);
    if (!v.expectFail && v.name.includes("minor version 99") && verified !== "ok") problems.push(`${v.name}: refused a compatible image`);
    if (!v.expectFail && v.name.includes("minor version 99") && loaded !== "ok") problems.push(`${v.name}: restore's loader refused a compatible image`);
    if (v.name.includes("minor version 99")) counts.compatible++;
    if (v.expectFail) counts.expectFail++;
    if (loaded === "ok") counts.loadAccepted++;
    if (verified === "refused") counts.showRefused++;
    else counts.showAccepted++;
    if (verified === "refused" && i % showEvery === 0) {
      counts.spawnedShow++;
      checkSpawn(["show", "--verify", scratch], `${v.name}: dist/cr show`, problems);
    }
    if (loaded === "refused" && i % restoreEvery === 0) {
      counts.spawnedRestore++;
      checkSpawn(["restore", "-d", "-D", scratch], `${v.name}: dist/cr restore`, problems);
      for (const t of dumpedTids) {
        if (!existsSync(`/proc/${t}`)) continue;
        problems.push(`${v.name}: a process appeared at pid ${t}`);
        // Killed only when it is the restored sleeper (another process may have taken a free pid meanwhile).
        if (exeOf(t) !== SLEEPER) continue;
        track(t); // restored by our dist/cr: killed and reaped by cleanup()
        process.kill(t, "SIGKILL");
        waitGone(t);
      }
    }
  });
  console.log(`hostile images: ${JSON.stringify(counts)} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (problems.length) console.log(problems.slice(0, 40).join("\n"));
  if (process.env.HOSTILE_DEBUG) writeFileSync(process.env.HOSTILE_DEBUG, problems.join("\n"));
  expect(problems).toEqual([]);
  // The pristine set (with a 0777 directory) is readable by show; only restore refuses such a directory.
  expect(counts.showAccepted).toBeGreaterThan(0);
  // The loader accepts what it should (the minor version 99 controls, at least): refusing everything would pass the rest.
  expect(counts.compatible).toBeGreaterThan(0);
  expect(counts.loadAccepted).toBeGreaterThanOrEqual(counts.compatible);
  expect(counts.expectFail).toBeGreaterThan(3000);
  expect(counts.spawnedRestore).toBeGreaterThanOrEqual(200);
  expect(counts.variants).toBeGreaterThan(3000);
}, 120_000);

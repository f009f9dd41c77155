// Text for humans, one function per record: `cr show` puts them together for
// a directory, or uses one for a single file.
import type {
  FilesImage, InventoryImage, ManifestImage, PagemapImage, TaskImage, TreeImage,
} from "../images/index.ts";
import {
  clock, epollEvents, handler, hex, inotifyMask, openFlags, prot, registers, saFlags, seconds, sigset, signal, size, unixName, inetEndpoint,
} from "./names.ts";
import { describeLayout, featureBits, featureName, layoutOfRecord, xstateBv } from "../xstate.ts";

/** Left-aligned columns from rows of cells. */
export function table(rows: string[][], indent = "  "): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  "));
}

export function formatInventory(inv: InventoryImage): string[] {
  const opts = Object.entries(inv.options).filter(([, on]) => on).map(([k]) => k);
  return [
    `cr ${inv.crVersion}, ${inv.arch}, page size ${inv.pageSize}, kernel ${inv.kernel}`,
    `dumped ${inv.dumpTime}, root pid ${inv.rootPid}, options: ${opts.length ? opts.join(", ") : "none"}`,
    inv.cpu
      ? `CPU xstate ${inv.cpu.xstateSize} bytes, XCR0 ${hex(inv.cpu.xcr0)}: ${describeLayout(layoutOfRecord(inv.cpu)).join(", ")}`
      : "CPU xstate layout not recorded",
  ];
}

export function formatTree(tree: TreeImage, comm: (pid: number) => string | undefined = () => undefined): string[] {
  const rows = [["PID", "PPID", "PGID", "SID", "STATE", "THREADS", "COMM"]];
  for (const t of tree.tasks) {
    const state = t.exitCode === undefined ? t.state : `${t.state} (exit ${t.exitCode})`;
    rows.push([String(t.pid), String(t.ppid), String(t.pgid), String(t.sid), state, t.threads.join(","), comm(t.pid) ?? ""]);
  }
  return [...table(rows), ...formatExternal(tree.external)];
}

/** A shell job's ids outside the tree, or nothing. */
export function formatExternal(ext: TreeImage["external"]): string[] {
  if (!ext) return [];
  const parts = [`session ${ext.sid}`];
  if (ext.pgid !== undefined) parts.push(`process group ${ext.pgid}`);
  if (ext.foreground !== undefined) parts.push(`foreground group of the terminal: ${ext.foreground}`);
  return [`  shell job (outside the tree): ${parts.join(", ")}`];
}

export function formatManifest(m: ManifestImage): string[] {
  return [`${m.files.length} files, ${m.hashAlg}`, ...table(m.files.map((f) => [f.name, `${f.size} B`, f.hash]))];
}

type FileRecord = FilesImage["files"][number];

/** What a kind of file carries besides its path and flags, in a few words. */
export function fileDetail(x: FileRecord, files: FilesImage | undefined): string {
  const buffered = (list: FilesImage["pipes"], id: number | undefined) => {
    const p = list?.find((q) => q.id === id);
    return p ? `${size(p.data.length)} buffered of ${size(p.size)}` : "";
  };
  switch (x.kind) {
    case "pipe":
      return buffered(files?.pipes, x.pipeId);
    case "fifo":
      return buffered(files?.fifos, x.fifoId);
    case "eventfd":
      return x.eventfd ? `count ${x.eventfd.count}${x.eventfd.semaphore ? ", semaphore" : ""}` : "";
    case "timerfd": {
      const t = x.timerfd;
      if (!t) return "";
      const armed = t.valueNs === 0n && t.intervalNs === 0n ? "disarmed"
        : `${t.valueNs === 0n ? "expired" : `next in ${seconds(t.valueNs)}`}${t.intervalNs ? `, every ${seconds(t.intervalNs)}` : ""}`;
      return `${clock(t.clockid)}${t.settimeFlags & 1 ? " (absolute)" : ""}, ${armed}, ${t.ticks} unread`;
    }
    case "signalfd":
      return x.signalfd ? `signals ${sigset(x.signalfd.sigmask)}` : "";
    case "epoll":
      return x.epoll?.length ? `watches fds ${x.epoll.map((r) => r.tfd).join(",")}` : "watches nothing";
    case "inotify":
      return x.inotify?.watches.length ? `wds ${x.inotify.watches.map((w) => w.wd).join(",")}` : "watches nothing";
    case "reg":
      return x.ghostId === undefined ? "" : `deleted: ghost ${x.ghostId}`;
    case "tty":
      return x.tty?.ctty ? "the job's controlling terminal" : "a terminal";
    case "unix":
      return x.unix ? unixDetail(x.unix) : "";
    case "inet":
      return x.inet ? inetDetail(x.inet) : "";
    default:
      return "";
  }
}

const SHUTDOWN = ["", ", shut down for reading", ", shut down for writing", ", shut down"];

/** A unix socket: type, state and what it had queued. */
function unixDetail(u: NonNullable<FileRecord["unix"]>): string {
  const bytes = u.queue.reduce((a, m) => a + m.length, 0);
  const queued = u.type === "stream" ? `${size(bytes)} queued` : `${u.queue.length} messages (${size(bytes)}) queued`;
  switch (u.state) {
    case "connected":
      return `${u.type}, ${u.peer === undefined ? "peer closed" : `peer ${u.peer}`}, ${queued}${SHUTDOWN[u.shutdown] ?? ""}`;
    case "listening":
      return `${u.type}, listening on ${u.name ? unixName(u.name) : "?"}, backlog ${u.backlog ?? "?"}`;
    default:
      return `${u.type}, unbound`;
  }
}

/** A TCP listener: where it listens, its backlog and the options set on it. */
function inetDetail(n: NonNullable<FileRecord["inet"]>): string {
  const opts = Object.entries(n.options).filter(([, on]) => on).map(([name]) => name);
  return `tcp ${n.family}, listening on ${inetEndpoint(n.address, n.port)}, backlog ${n.backlog}${opts.length ? `, ${opts.join(",")}` : ""}`;
}

export function formatFiles(f: FilesImage): string[] {
  const rows = [["ID", "KIND", "FLAGS", "POS", "DETAIL", "PATH"]];
  for (const x of f.files) rows.push([String(x.id), x.kind, openFlags(x.flags), String(x.pos), fileDetail(x, f), x.path]);
  return [...table(rows), ...formatEpolls(f), ...formatInotifyWatches(f), ...formatGhosts(f)];
}

/** Every ghost (deleted file saved in ghost-ID.img), or nothing when there is none. */
export function formatGhosts(f: FilesImage): string[] {
  const rows = [["GHOST", "SIZE", "MODE", "OWNER", "SAVED", "PATH (deleted)"]];
  for (const g of f.ghosts ?? []) {
    const saved = g.pages.reduce((a, r) => a + r.pages, 0) * 4096;
    rows.push([String(g.id), size(g.size), (g.mode & 0o7777).toString(8).padStart(4, "0"), `${g.uid}:${g.gid}`, size(saved), g.path]);
  }
  return rows.length > 1 ? ["ghost files:", ...table(rows)] : [];
}

/** " (deleted, ghost N)" after the path of something whose file was deleted. */
const ghostNote = (id: number | undefined) => (id === undefined ? "" : ` (deleted, ghost ${id})`);

/** Every epoll registration (epoll and registered file by files.cbor id), or nothing when there is none. */
export function formatEpolls(f: FilesImage): string[] {
  const regs = [["EPOLL", "FD", "FILE", "EVENTS", "DATA"]];
  for (const x of f.files) {
    for (const r of x.epoll ?? []) regs.push([String(x.id), String(r.tfd), String(r.fileId), epollEvents(r.events), hex(r.data)]);
  }
  return regs.length > 1 ? ["epoll registrations:", ...table(regs)] : [];
}

/** Every inotify watch (instance by files.cbor id), or nothing when there is none. */
export function formatInotifyWatches(f: FilesImage): string[] {
  const rows = [["INOTIFY", "WD", "MASK", "PATH"]];
  for (const x of f.files) for (const w of x.inotify?.watches ?? []) rows.push([String(x.id), String(w.wd), inotifyMask(w.mask), w.path]);
  return rows.length > 1 ? ["inotify watches:", ...table(rows)] : [];
}

export function formatPagemap(p: PagemapImage, pageSize: number): string[] {
  const total = p.entries.reduce((a, e) => a + e.pages, 0);
  const rows = [["START", "END", "PAGES", "FILE OFFSET"]];
  for (const e of p.entries) rows.push([hex(e.start), hex(e.start + e.pages * pageSize), String(e.pages), String(e.offset)]);
  return [`${p.entries.length} runs, ${total} pages (${size(total * pageSize)})`, ...table(rows)];
}

/** Pages of `p` that fall in [start, end). */
function pagesIn(p: PagemapImage, pageSize: number, start: number, end: number): number {
  let n = 0;
  for (const e of p.entries) {
    const lo = Math.max(start, e.start);
    const hi = Math.min(end, e.start + e.pages * pageSize);
    if (hi > lo) n += (hi - lo) / pageSize;
  }
  return n;
}

function formatVmas(t: TaskImage, pagemap: PagemapImage | undefined, pageSize: number): string[] {
  const rows = [["START", "END", "SIZE", "PROT", "KIND", "PAGES", "PATH"]];
  for (const v of t.mm.vmas) {
    const total = (v.end - v.start) / pageSize;
    const pages = !v.dumped ? "-" : pagemap ? `${pagesIn(pagemap, pageSize, v.start, v.end)}/${total}` : `?/${total}`;
    const kind = `${v.kind}${v.flags & 1 ? " shared" : ""}${v.growsDown ? " growsdown" : ""}`;
    rows.push([hex(v.start), hex(v.end), size(v.end - v.start), prot(v.prot), kind, pages, (v.path ?? "") + ghostNote(v.ghostId)]);
  }
  return table(rows, "    ");
}

function formatFds(t: TaskImage, files: FilesImage | undefined): string[] {
  const byId = new Map(files?.files.map((f) => [f.id, f]));
  const rows = [["FD", "KIND", "FLAGS", "POS", "DETAIL", "PATH"]];
  for (const fd of t.fds) {
    const f = byId.get(fd.fileId);
    const flags = f ? openFlags(f.flags) + (fd.cloexec ? "|O_CLOEXEC" : "") : fd.cloexec ? "O_CLOEXEC" : "";
    rows.push([String(fd.fd), f?.kind ?? `file ${fd.fileId}`, flags, f ? String(f.pos) : "", f ? fileDetail(f, files) : "", f?.path ?? ""]);
  }
  return table(rows, "    ");
}

function formatSignals(t: TaskImage): string[] {
  const set = t.sigactions.filter((s) => s.handler !== 0);
  if (set.length === 0) return ["    (all default)"];
  const rows = [["SIGNAL", "HANDLER", "FLAGS", "MASK"]];
  for (const s of set) rows.push([signal(s.sig), handler(s.handler), saFlags(s.flags), sigset(s.mask)]);
  return table(rows, "    ");
}

function formatRegs(regs: Uint8Array): string[] {
  const named = registers(regs);
  if (!named) return [`      (${regs.length} bytes, not a user_regs_struct)`];
  const cells = named.map(([n, v]) => `${n.padStart(8)} ${v.toString(16).padStart(16, "0")}`);
  const out: string[] = [];
  for (let i = 0; i < cells.length; i += 3) out.push("    " + cells.slice(i, i + 3).join("  "));
  return out;
}

/** The features an XSAVE image holds state of (its XSTATE_BV). */
function xstateInUse(x: Uint8Array): string {
  if (x.length < 576) return "";
  const used = featureBits(xstateBv(x));
  return `(in use: ${used.length ? used.map(featureName).join(", ") : "none"})`;
}

function formatThreads(t: TaskImage, regs: boolean): string[] {
  const out: string[] = [];
  for (const th of t.threads) {
    const rseq = th.rseq ? `rseq ${hex(th.rseq.ptr)}/${th.rseq.len}` : "no rseq";
    out.push(`    ${th.tid}${th.comm === undefined ? "" : ` (${th.comm})`}: sigmask ${sigset(th.sigmask)}, ${rseq}, clear-tid ${hex(th.tidAddress)}, ` +
      `robust list ${hex(th.robustList.head)}, ${th.pending.length} pending, xstate ${th.xstate.length} B ${xstateInUse(th.xstate)}`);
    if (regs) out.push(...formatRegs(th.regs));
  }
  return out;
}

export interface TaskView {
  task: TaskImage;
  pagemap?: PagemapImage;
  files?: FilesImage;
  pageSize: number;
  regs: boolean;
}

export function formatTask({ task: t, pagemap, files, pageSize, regs }: TaskView): string[] {
  const c = t.creds;
  const dumped = pagemap?.entries.reduce((a, e) => a + e.pages, 0);
  const it = t.itimers;
  const timers = [["real", it.real], ["virtual", it.virtual], ["prof", it.prof]] as const;
  const armed = timers.filter(([, v]) => v.valueUs !== 0 || v.intervalUs !== 0).map(([n, v]) => `${n} ${v.valueUs}/${v.intervalUs} us`);
  return [
    `task ${t.pid} (${t.comm})`,
    `  exe ${t.exe}${ghostNote(t.exeGhostId)}`,
    `  cwd ${t.cwd}, root ${t.root}, umask ${t.umask.toString(8).padStart(3, "0")}, personality ${hex(t.personality)}` +
      `${t.xcompPerm === undefined ? "" : `, xstate permission ${hex(t.xcompPerm)}`}`,
    `  uid ${c.uid.join(",")}, gid ${c.gid.join(",")}, groups ${c.groups.join(",") || "-"}, cap eff ${hex(c.capEff)}` +
      `${c.noNewPrivs ? ", no_new_privs" : ""}`,
    `  brk ${hex(t.mm.brk)} (start ${hex(t.mm.startBrk)}), code ${hex(t.mm.startCode)}-${hex(t.mm.endCode)}, ` +
      `stack ${hex(t.mm.startStack)}, itimers ${armed.join(", ") || "none"}, ${t.sharedPending.length} shared pending`,
    `  memory: ${t.mm.vmas.length} VMAs${dumped === undefined ? "" : `, ${dumped} pages dumped (${size(dumped * pageSize)})`}`,
    ...formatVmas(t, pagemap, pageSize),
    `  fds: ${t.fds.length}`,
    ...formatFds(t, files),
    `  signals with a handler:`,
    ...formatSignals(t),
    `  threads: ${t.threads.length}`,
    ...formatThreads(t, regs),
    `  POSIX timers: ${(t.posixTimers ?? []).length}`,
    ...formatPosixTimers(t),
    ...formatSeccomp(t),
  ];
}

/** The seccomp filters (size, flags) and which threads run under which chain (oldest filter first). */
function formatSeccomp(t: TaskImage): string[] {
  const filters = t.seccompFilters ?? [];
  if (filters.length === 0) return [];
  const byChain = new Map<string, number[]>();
  for (const th of t.threads) {
    const key = (th.seccomp ?? []).join(" <- ") || "none";
    byChain.set(key, [...(byChain.get(key) ?? []), th.tid]);
  }
  return [
    `  seccomp: ${filters.length} filter(s)`,
    ...filters.map((f, i) => `    ${i}: ${f.insns.length / 8} insns${(f.flags & 2) !== 0 ? ", log" : ""}`),
    ...[...byChain].map(([chain, tids]) => `    chain ${chain}: thread(s) ${tids.join(",")}`),
  ];
}

const SIGEV = ["signal", "none", "thread"];

function formatPosixTimers(t: TaskImage): string[] {
  return (t.posixTimers ?? []).map((p) => {
    const to = (p.notify & 4) !== 0 ? ` to thread ${p.tid}` : "";
    const ns = (v: bigint) => `${(Number(v) / 1e6).toFixed(3)} ms`;
    return `    ${p.id}: clock ${p.clockId}, ${SIGEV[p.notify & 3] ?? p.notify} ${p.signo}${to}, next ${ns(p.valueNs)}, every ${ns(p.intervalNs)}`;
  });
}

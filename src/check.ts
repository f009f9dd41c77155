// `cr check`: what this kernel and this process can do, each feature probed
// for real (libcr forks a throwaway child and exercises it), and whether dump
// and restore can work here.
import { readFileSync, readlinkSync, readdirSync } from "node:fs";
import { release, arch } from "node:os";
import { cpuXstate, runProbes, type CheckResults } from "./native/index.ts";
import { XSTATE_MAX } from "./native/abi.ts";
import { describeLayout, featureName, layoutRecord, XSAVE_MIN } from "./xstate.ts";
import { parseMaps } from "./proc/maps.ts";
import { CAP_CHECKPOINT_RESTORE, CAP_SYS_ADMIN, CAP_SYS_PTRACE, hasCap, parseStatus } from "./proc/status.ts";

export interface Feature {
  name: string;
  ok: boolean;
  required: boolean;
  detail: string;
}

export interface CheckReport {
  kernel: string;
  arch: string;
  pageSize: number;
  root: boolean;
  capabilities: { checkpointRestore: boolean; sysPtrace: boolean; sysAdmin: boolean };
  vdso: { name: string; start: number; size: number }[];
  /** This CPU's user XSAVE layout: what a dump here records, what a restore here can take. */
  xstate: { xcr0: string; size: number; features: { bit: number; name: string; offset: number; size: number }[] };
  features: Feature[];
  canDump: boolean;
  canRestore: boolean;
  missing: string[];
}

function pageSize(): number {
  // AT_PAGESZ (6) from our own auxv.
  const b = readFileSync("/proc/self/auxv");
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let o = 0; o + 16 <= b.byteLength; o += 16) {
    const t = dv.getBigUint64(o, true);
    if (t === 0n) break;
    if (t === 6n) return Number(dv.getBigUint64(o + 8, true));
  }
  return 4096;
}

function mapFilesReadable(): boolean {
  try {
    const names = readdirSync("/proc/self/map_files");
    return names.length > 0 && readlinkSync(`/proc/self/map_files/${names[0]}`).length > 0;
  } catch {
    return false;
  }
}

function describe(v: number, okText = "works"): string {
  if (v === 1) return okText;
  if (v === 0) return "not available";
  return `failed (errno ${-v})`;
}

export function runCheck(): CheckReport {
  const status = parseStatus(readFileSync("/proc/self/status", "utf8"));
  const caps = {
    checkpointRestore: hasCap(status.capEff, CAP_CHECKPOINT_RESTORE),
    sysPtrace: hasCap(status.capEff, CAP_SYS_PTRACE),
    sysAdmin: hasCap(status.capEff, CAP_SYS_ADMIN),
  };
  const root = status.uid[1] === 0;
  const p: CheckResults = runProbes();
  const xstate = cpuXstate();
  const maps = parseMaps(readFileSync("/proc/self/maps", "utf8"));
  const vdso = maps
    .filter((m) => m.path === "[vvar]" || m.path === "[vvar_vclock]" || m.path === "[vdso]")
    .map((m) => ({ name: m.path, start: m.start, size: m.end - m.start }));

  const f = (name: string, v: number, required: boolean, okText?: string): Feature => ({
    name, ok: v === 1, required, detail: describe(v, okText),
  });
  const features: Feature[] = [
    { name: "privileges", ok: root || (caps.checkpointRestore && caps.sysPtrace), required: true,
      detail: root ? "root" : `CAP_CHECKPOINT_RESTORE=${caps.checkpointRestore} CAP_SYS_PTRACE=${caps.sysPtrace}` },
    f("ptrace_seize", p.ptrace_seize, true),
    f("ptrace_interrupt", p.ptrace_interrupt, true),
    f("process_vm_readv", p.process_vm_readv, true),
    f("clone3_set_tid", p.clone3_set_tid, true),
    f("prctl_mm_map", p.prctl_mm_map, true),
    f("rseq_config", p.rseq_config, true, "PTRACE_GET_RSEQ_CONFIGURATION works"),
    // The parasite's control socket and page pipe reach cr through them.
    f("pidfd_open", p.pidfd_open, true),
    f("pidfd_getfd", p.pidfd_getfd, true),
    f("memfd_create", p.memfd_create, false),
    f("userfaultfd", p.userfaultfd, false),
    f("pagemap_scan", p.pagemap_scan, false),
    f("soft_dirty", p.soft_dirty, false),
    f("timer_restore_ids", p.timer_restore_ids, false, "POSIX timers restore at their ids"),
    { name: "map_files", ok: mapFilesReadable(), required: false, detail: mapFilesReadable() ? "readable" : "not readable" },
    { name: "xstate", ok: xstate.size >= XSAVE_MIN && xstate.size + 4 <= XSTATE_MAX, required: true,
      detail: `${xstate.size} bytes, XCR0 0x${xstate.xcr0.toString(16)}: ${describeLayout(xstate).join(", ")}` },
    { name: "vdso_layout", ok: vdso.some((v) => v.name === "[vdso]"), required: true,
      detail: vdso.map((v) => `${v.name}@0x${v.start.toString(16)}+${v.size / 1024}K`).join(" ") || "no [vdso]" },
  ];
  const missing = features.filter((x) => x.required && !x.ok).map((x) => x.name);
  const dumpNeeds = new Set(["privileges", "ptrace_seize", "ptrace_interrupt", "process_vm_readv", "rseq_config", "xstate", "pidfd_open", "pidfd_getfd"]);
  return {
    kernel: release(),
    arch: arch() === "x64" ? "x86_64" : arch(),
    pageSize: pageSize(),
    root,
    capabilities: caps,
    vdso,
    xstate: {
      xcr0: `0x${xstate.xcr0.toString(16)}`, size: xstate.size,
      features: layoutRecord(xstate).features.map((x) => ({ ...x, name: featureName(x.bit) })),
    },
    features,
    canDump: !missing.some((m) => dumpNeeds.has(m)),
    canRestore: missing.length === 0,
    missing,
  };
}

export function formatCheck(r: CheckReport): string {
  const lines = [
    `kernel ${r.kernel} ${r.arch}, page size ${r.pageSize}, ${r.root ? "root" : "not root"}`,
    ...r.features.map((x) => `  ${x.ok ? "ok  " : x.required ? "MISS" : "no  "} ${x.name.padEnd(18)} ${x.detail}`),
  ];
  lines.push(r.missing.length === 0
    ? "dump and restore can work here"
    : `dump ${r.canDump ? "can" : "cannot"} work, restore ${r.canRestore ? "can" : "cannot"} work: missing ${r.missing.join(", ")}`);
  return lines.join("\n");
}

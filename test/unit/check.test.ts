// `cr check` from a copy of dist/cr alone in an empty directory, run from yet
// another working directory: the report is well formed and each probe agrees
// with what the test finds out directly.
import { afterAll, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { release, tmpdir } from "node:os";
import { join } from "node:path";
import { CR } from "../helpers/procs.ts";

const alone = mkdtempSync(join(tmpdir(), "cr-alone-"));
const elsewhere = mkdtempSync(join(tmpdir(), "cr-cwd-"));
afterAll(() => {
  rmSync(alone, { recursive: true, force: true });
  rmSync(elsewhere, { recursive: true, force: true });
});

interface Report {
  kernel: string;
  arch: string;
  pageSize: number;
  root: boolean;
  vdso: { name: string; start: number; size: number }[];
  features: { name: string; ok: boolean; required: boolean; detail: string }[];
  canDump: boolean;
  canRestore: boolean;
  missing: string[];
}

function runAlone(args: string[]) {
  const bin = join(alone, "cr");
  copyFileSync(CR, bin);
  spawnSync("chmod", ["+x", bin]);
  return spawnSync(bin, args, { cwd: elsewhere, encoding: "utf8", env: { PATH: "/usr/bin:/bin" } });
}

const kernelAtLeast = (maj: number, min: number) => {
  const [a, b] = release().split(".").map(Number);
  return a! > maj || (a === maj && b! >= min);
};

test("dist/cr works alone: --version, --help, check --json", () => {
  const v = runAlone(["--version"]);
  expect(v.status).toBe(0);
  expect(v.stdout).toContain(JSON.parse(readFileSync(join(import.meta.dir, "../../package.json"), "utf8")).version);
  const h = runAlone(["--help"]);
  expect(h.status).toBe(0);
  for (const c of ["check", "dump", "restore", "show"]) expect(h.stdout).toContain(c);

  const r = runAlone(["check", "--json"]);
  expect(r.stderr).toBe("");
  const rep = JSON.parse(r.stdout) as Report;
  expect(rep.kernel).toBe(release());
  expect(rep.arch).toBe("x86_64");
  expect(rep.pageSize).toBe(Number(spawnSync("getconf", ["PAGESIZE"], { encoding: "utf8" }).stdout.trim()));
  expect(rep.root).toBe(process.getuid!() === 0);
  const feat = (n: string) => rep.features.find((f) => f.name === n)!;
  // Root on a >= 5.5 kernel with CONFIG_CHECKPOINT_RESTORE: these must all work.
  expect(existsProc("/proc/self/map_files")).toBe(feat("map_files").ok);
  expect(feat("pagemap_scan").ok).toBe(kernelAtLeast(6, 7));
  expect(feat("clone3_set_tid").ok).toBe(rep.root && kernelAtLeast(5, 5));
  expect(feat("rseq_config").ok).toBe(kernelAtLeast(5, 13));
  expect(feat("ptrace_seize").ok).toBe(true);
  expect(feat("process_vm_readv").ok).toBe(true);
  // The vDSO layout is the same for every process of this kernel: compare sizes with ours.
  const ours = readFileSync("/proc/self/maps", "utf8").split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => ["[vvar]", "[vvar_vclock]", "[vdso]"].includes(f[5] ?? ""))
    .map((f) => {
      const [s, e] = f[0]!.split("-").map((x) => parseInt(x, 16));
      return { name: f[5]!, size: e! - s! };
    });
  expect(rep.vdso.map((v) => ({ name: v.name, size: v.size }))).toEqual(ours);
  // Exit code agrees with the verdict.
  expect(r.status).toBe(rep.canDump && rep.canRestore ? 0 : 1);
  expect(rep.missing.length === 0).toBe(rep.canRestore);
});

test("soft-dirty probe agrees with a direct pagemap check", () => {
  const py = `
import mmap, ctypes, struct
m = mmap.mmap(-1, 4096); m[0:1] = b'x'
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
with open('/proc/self/pagemap','rb') as f:
    f.seek((addr // 4096) * 8); e = struct.unpack('<Q', f.read(8))[0]
print(1 if (e >> 55) & 1 else 0)`;
  const direct = spawnSync("python3", ["-c", py], { encoding: "utf8" }).stdout.trim() === "1";
  const rep = JSON.parse(runAlone(["check", "--json"]).stdout) as Report;
  expect(rep.features.find((f) => f.name === "soft_dirty")!.ok).toBe(direct);
});

test("subcommands not built yet say so and exit 2", () => {
  for (const c of ["pre-dump", "lazy-pages", "page-server"]) {
    const r = runAlone([c]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("not implemented yet");
  }
  // show is built: a missing directory is one clear line and exit 1.
  const r = runAlone(["show", "/nonexistent"]);
  expect(r.status).toBe(1);
  expect(r.stderr).toBe("cr: show: /nonexistent: no such file or directory\n");
});

function existsProc(p: string): boolean {
  try {
    return spawnSync("ls", [p], { encoding: "utf8" }).stdout.trim().length > 0;
  } catch {
    return false;
  }
}

// Usage errors of the command line: one clear line, exit status 2.
import { describe, expect, test } from "bun:test";
import { cr } from "../helpers/procs.ts";
import { ptraceRefusal } from "../../src/dump/index.ts";

describe("cr usage errors", () => {
  for (const args of [["show", "-D", "/tmp"], ["dump", "-t", "1", "--bogus"], ["dump", "-t"], ["frobnicate"]]) {
    test(`cr ${args.join(" ")}`, () => {
      const r = cr(args);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toStartWith("cr: ");
      expect(r.stderr).not.toContain("internal error");
    });
  }
});

describe("CRIU's spellings", () => {
  test("an option cr does not have is reported as typed", () => {
    const r = cr(["dump", "-t", "1", "-D", "/nonexistent", "--ext-unix-sk"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("Unknown option `--ext-unix-sk`");
  });
  test("--verbosity 5 is no level; cr with no command is a usage error", () => {
    expect(cr(["dump", "-t", "1", "-D", "/nonexistent", "--verbosity", "5"]).status).toBe(2);
    const r = cr([]);
    expect(r.status).toBe(2);
  });
  test("help tells the truth about --no-sync", () => {
    const r = cr(["dump", "--help"]);
    expect(r.stdout).toContain("--no-sync");
    expect(r.stdout).not.toContain("(default: true)");
    for (const o of ["-o, --log-file <file>", "--display-stats", "--verbosity <level>"]) expect(r.stdout).toContain(o);
  });
});

describe("why a process may not be traced", () => {
  const CAP_SYS_PTRACE = 1n << 19n, CAP_CHECKPOINT_RESTORE = 1n << 40n;
  test("root, or both capabilities, may; else the missing ones are named", () => {
    expect(ptraceRefusal({ euid: 0, capEff: 0n }, 1)).toBeNull();
    expect(ptraceRefusal({ euid: 1000, capEff: CAP_SYS_PTRACE | CAP_CHECKPOINT_RESTORE }, 1)).toBeNull();
    expect(ptraceRefusal({ euid: 1000, capEff: CAP_SYS_PTRACE }, 1)).toBe(
      "cr runs as uid 1000 without CAP_CHECKPOINT_RESTORE: run it as root, or give it both capabilities");
    expect(ptraceRefusal({ euid: 1000, capEff: 0n }, undefined)).toContain("without CAP_SYS_PTRACE and CAP_CHECKPOINT_RESTORE");
  });
  test("Yama's ptrace_scope 2 needs CAP_SYS_PTRACE, 3 forbids it all", () => {
    expect(ptraceRefusal({ euid: 0, capEff: 0n }, 2)).toContain("ptrace_scope is 2");
    expect(ptraceRefusal({ euid: 0, capEff: CAP_SYS_PTRACE }, 2)).toBeNull();
    expect(ptraceRefusal({ euid: 0, capEff: ~0n }, 3)).toContain("ptrace_scope is 3");
  });
});

// cr where installing CRIU is not an option: libcr is loaded from a memfd,
// so cr needs no writable or executable directory. Each case runs a real
// dump and restore: with a noexec /tmp (the same files, remounted noexec in
// a private mount namespace), with TMPDIR unset or naming a missing
// directory, and inside a chroot that holds only dist/cr and the libraries
// ldd names, with no /tmp and a read-only root (test/helpers/hardened-dump-restore.sh).
import { afterEach, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import {
  CR, ROOT, WORKLOADS, cleanup, expectRunsOnAndPasses, readProgress, startWorkload, tempDir, track, waitFor, waitGone,
} from "../helpers/procs.ts";

afterEach(cleanup);

function crEnv(args: string[], env: Record<string, string | undefined>) {
  const e: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...env })) if (v !== undefined) e[k] = v;
  return spawnSync(CR, args, { encoding: "utf8", env: e, timeout: 60_000 });
}

describe("no writable, executable directory needed", () => {
  for (const tmpdir of [undefined, "/nonexistent/cr-tmp"]) {
    test(`TMPDIR ${tmpdir === undefined ? "unset" : "naming a missing directory"}: check, dump and restore`, () => {
      const w = startWorkload("sleeper");
      waitFor(() => readProgress(w.dir) >= 2, 10_000, "progress");
      const env = { TMPDIR: tmpdir };
      expect(crEnv(["check"], env).status).toBe(0);
      const images = tempDir("cr-images-");
      const d = crEnv(["dump", "-t", String(w.pid), "-D", images], env);
      expect({ status: d.status, stderr: d.stderr }).toEqual({ status: 0, stderr: "" });
      waitGone(w.pid);
      const r = crEnv(["restore", "-D", images, "-d"], env);
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
      track(w.pid);
      expectRunsOnAndPasses(w);
    });
  }

  /** The script in a mount namespace of its own; the restored workload comes back to us (subreaper) to be reaped. */
  function hardened(args: string[]): void {
    const r = spawnSync("unshare", ["--mount", "--propagation", "private", join(import.meta.dir, "../helpers/hardened-dump-restore.sh"), ...args],
      { encoding: "utf8", timeout: 60_000 });
    const pid = Number(/^pid (\d+)$/m.exec(r.stdout)?.[1] ?? 0);
    if (pid > 0) {
      track(pid);
      waitGone(pid);
    }
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    const m = /^progress (\d+) -> (\d+)$/m.exec(r.stdout);
    expect(m).not.toBeNull();
    // The restored workload went on counting, and passed its own final check.
    expect(Number(m![2])).toBeGreaterThan(Number(m![1]));
    expect(r.stdout).toMatch(/^result PASS \d+$/m);
  }

  test("/tmp mounted noexec (the same files, in a mount namespace of the test's own): check, dump and restore", () => {
    const bin = mkdtempSync(join(ROOT, ".hardened-"));
    try {
      hardened(["noexec-tmp", CR, join(WORKLOADS, "sleeper-static"), bin]);
    } finally {
      rmdirSync(bin);
    }
  }, 60_000);

  test("a chroot with only dist/cr and its libraries, no /tmp, a read-only root: check, dump and restore", () => {
    const root = mkdtempSync(join(ROOT, ".chroot-"));
    try {
      hardened(["chroot", CR, join(WORKLOADS, "sleeper-static"), root]);
    } finally {
      // The tmpfs went with the namespace: only the empty mount point is left.
      rmdirSync(root);
    }
  }, 60_000);
});

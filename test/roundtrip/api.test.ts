// cr as a library: a separate Bun program imports it as "cr" (the package's
// own name, src/index.ts), checks, dumps, shows and restores a workload, and
// meets one CrError; the workload goes on and passes its own checks.
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { cleanup, expectRunsOnAndPasses, readProgress, ROOT, startWorkload, tempDir, track, waitFor, waitGone } from "../helpers/procs.ts";

afterEach(cleanup);

test("import { check, dump, show, restore, CrError } from \"cr\": a round trip from a program of one's own", async () => {
  const w = startWorkload("counter");
  waitFor(() => readProgress(w.dir) >= 3, 10_000, "progress");
  const images = join(tempDir("cr-api-"), "img");
  const p = Bun.spawn([process.execPath, join(ROOT, "test/helpers/api-client.ts"), String(w.pid), images],
    { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  // The dumped workload is our child: reap it so the client can restore at its pid.
  waitGone(w.pid, 30_000);
  const code = await p.exited;
  const out = await new Response(p.stdout).text(), err = await new Response(p.stderr).text();
  expect({ code, err }).toEqual({ code: 0, err: "" });
  const r = JSON.parse(out);
  expect(r).toEqual({
    canDump: true,
    dump: { pid: w.pid, tasks: 1, pagesBytes: expect.any(Number), logged: true },
    shown: w.pid,
    restored: w.pid,
    error: { op: "dump", pid: 999_999_999, oneLine: "dump (pid 999999999): no such process [errno 3]" },
  });
  // The restored task's parent (the client) is gone: it came back to us.
  track(w.pid);
  expectRunsOnAndPasses(w);
});

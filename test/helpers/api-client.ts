// A Bun program using cr as a library (`import ... from "cr"`), as an
// orchestrator would: dumps the process given, restores it, and prints what
// it got as one JSON line. Usage: bun api-client.ts PID IMAGES_DIR.
import { check, CrError, dump, restore, show } from "cr";
import { existsSync } from "node:fs";

const [pidArg, dir] = process.argv.slice(2);
const pid = Number(pidArg);
const out: Record<string, unknown> = {};
out.canDump = check().canDump;
const lines: string[] = [];
const d = dump({ tree: pid, imagesDir: dir!, sync: false, log: (m) => lines.push(m) });
out.dump = { pid: d.pid, tasks: d.tasks, pagesBytes: d.pagesBytes, logged: lines.length > 0 };
out.shown = JSON.parse(show(dir!, { json: true, verify: true })).inventory.rootPid;
for (let i = 0; i < 500 && existsSync(`/proc/${pid}/status`); i++) {
  // The dumped task was the test's child: it reaps it.
  Bun.sleepSync(10);
}
const r = restore({ imagesDir: dir!, restoreDetached: true });
out.restored = r.pid;
try {
  dump({ tree: 999_999_999, imagesDir: `${dir}-missing` });
} catch (e) {
  out.error = e instanceof CrError ? { op: e.op, pid: e.pid ?? null, oneLine: e.oneLine() } : String(e);
}
process.stdout.write(JSON.stringify(out) + "\n");
// The restored task is our child: leave it to the test (it reaps what comes to it).
process.exit(0);

// The image directory of a dump: a new or empty one only (images already
// there are never overwritten or mixed with a new set), and a dump that
// fails leaves nothing of itself in it.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { alive, cleanup, cr, oneLine, readProgress, startWorkload, tempDir, tracerOf, track, waitFor } from "../helpers/procs.ts";

afterEach(cleanup);

describe("the image directory", () => {
  test("a directory that holds images is refused: the images and the process are untouched", () => {
    const w = startWorkload("sleeper");
    waitFor(() => readProgress(w.dir) >= 2, 10_000, "progress");
    const images = tempDir("cr-images-");
    expect(cr(["dump", "-t", String(w.pid), "-D", images, "-R"]).status).toBe(0);
    const before = new Map(readdirSync(images).map((n) => [n, readFileSync(join(images, n))]));
    const r = cr(["dump", "-t", String(w.pid), "-D", images]);
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toContain(`${images} is not empty`);
    expect(new Map(readdirSync(images).map((n) => [n, readFileSync(join(images, n))]))).toEqual(before);
    expect(alive(w.pid)).toBe(true);
    expect(tracerOf(w.pid)).toBe(0);
    // They still restore: check them as restore would.
    expect(cr(["show", "--verify", images]).status).toBe(0);
  });

  test("a failed dump leaves an empty directory empty, and removes one it made", () => {
    // bash, dumped first (its images are written), then its python child,
    // whose socket is refused.
    const dir = tempDir();
    const py = "import socket, time\ns = socket.socket()\nopen('ready', 'w').close()\ntime.sleep(1000)";
    const sh = Bun.spawn(["bash", "-c", `python3 -c "${py}" & while :; do sleep 0.05; done`], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
    track(sh.pid);
    waitFor(() => existsSync(join(dir, "ready")), 10_000, "bash and its python child");
    const child = Number(readFileSync(`/proc/${sh.pid}/task/${sh.pid}/children`, "utf8").trim().split(/\s+/)[0]);
    track(child);
    const empty = join(tempDir(), "empty");
    mkdirSync(empty);
    const r1 = cr(["dump", "-t", String(sh.pid), "-D", empty]);
    expect(r1.status).not.toBe(0);
    // Refused at the child: bash's images were being written by then.
    expect(oneLine(r1.stderr)).toContain(`pid ${child}`);
    expect(readdirSync(empty)).toEqual([]);
    const made = join(tempDir(), "new", "images");
    expect(cr(["dump", "-t", String(sh.pid), "-D", made]).status).not.toBe(0);
    expect(existsSync(made)).toBe(false);
    for (const pid of [sh.pid, child]) {
      expect(alive(pid)).toBe(true);
      expect(tracerOf(pid)).toBe(0);
    }
  });
});

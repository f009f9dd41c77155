// Round trips of listening TCP sockets: the tcplisten workload (IPv4 and
// IPv6 listeners with their options, connected to by itself every
// iteration), an unmodified `python3 -m http.server`, fetched before the
// dump and after the restore, and a listener a parent shares with the child
// that accepts on it; a port somebody else holds at restore time ("address
// in use", nothing created). Ports are the kernel's pick (port 0)
// or a free one asked of the kernel the same way: other tests run at once.
import { afterEach, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as img from "../../src/images/index.ts";
import {
  alive, cleanup, cr, dumpRetrying, expectNothingRestored, expectRunsOnAndPasses, oneLine, roundTrip, startWorkload, tempDir, track,
  waitDumpedGone, waitFor, waitGone,
} from "../helpers/procs.ts";

afterEach(cleanup);

const filesOf = (images: string) => img.decodeImage("files", img.readImageFile(images, img.FILES), img.FILES);
const O_NONBLOCK = 0o4000;

/**
 * Dump `pid` into a fresh dir. The workload connects to its own listeners
 * every iteration: a dump that lands in the moment a connection exists
 * (waiting in the accept queue, or accepted and not closed yet: well under
 * 1 dump in 100, measured) is refused, as designed, and leaves it running:
 * only those refusals are tried again, each one logged, DUMP_ATTEMPTS times
 * at most (see dumpRetrying).
 */
const dumpTcplisten = (pid: number) => dumpRetrying(pid, ["connection(s) waiting to be accepted", "an established TCP connection"]);

/** A TCP port nobody listens on now (the kernel's pick for a socket bound to port 0, then closed). */
function freePort(): number {
  const r = spawnSync("python3", ["-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"], { encoding: "utf8" });
  expect(r.status).toBe(0);
  return Number(r.stdout.trim());
}

/** GET `url` with a short python3 client (a connection of its own, closed after the answer): the body, or "ERROR ...". */
function fetchText(url: string): string {
  const r = spawnSync("python3", ["-c", [
    "import sys, urllib.request",
    "try:",
    "    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())",
    "except Exception as e:",
    "    sys.stdout.write('ERROR %s' % e)",
  ].join("\n"), url], { encoding: "utf8", timeout: 20_000 });
  return r.stdout;
}

/** `python3 -m http.server PORT --bind 127.0.0.1` serving a fresh dir with one page, answering. */
function startHttpServer(): { pid: number; url: string; page: string; port: number } {
  const dir = tempDir("cr-http-");
  const page = `page of ${dir}\n`;
  writeFileSync(join(dir, "page.txt"), page);
  const port = freePort();
  const p = Bun.spawn(["python3", "-m", "http.server", String(port), "--bind", "127.0.0.1"], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
  track(p.pid);
  const url = `http://127.0.0.1:${port}/page.txt`;
  waitFor(() => fetchText(url) === page, 15_000, "http.server to answer");
  return { pid: p.pid, url, page, port };
}

describe("listening TCP sockets", () => {
  test("IPv4 and IPv6 listeners with their options and fd flags: dumped, restored, the workload connects to them again", () => {
    const w = startWorkload("tcplisten");
    const [port4, port6] = readFileSync(join(w.dir, "port"), "utf8").trim().split(" ").map(Number);
    const images = dumpTcplisten(w.pid);
    const inet = filesOf(images).files.filter((f) => f.kind === "inet");
    expect(inet.length).toBe(2);
    const v4 = inet.find((f) => f.inet!.family === "ipv4")!;
    const v6 = inet.find((f) => f.inet!.family === "ipv6")!;
    expect(v4.inet).toEqual({
      family: "ipv4", type: "stream", state: "listening", address: new Uint8Array([127, 0, 0, 1]), port: port4!, backlog: 9,
      options: { reuseaddr: true, reuseport: true, v6only: false, nodelay: true, keepalive: true },
    });
    expect(v6.inet).toEqual({
      family: "ipv6", type: "stream", state: "listening", address: new Uint8Array([...new Uint8Array(15), 1]), port: port6!, backlog: 11,
      options: { reuseaddr: false, reuseport: false, v6only: true, nodelay: false, keepalive: false },
    });
    expect(v4.flags & O_NONBLOCK).toBe(0);
    expect(v6.flags & O_NONBLOCK).toBe(O_NONBLOCK);
    const show = cr(["show", images]);
    expect(show.status).toBe(0);
    expect(show.stdout).toContain(`tcp ipv4, listening on 127.0.0.1:${port4}, backlog 9, reuseaddr,reuseport,nodelay,keepalive`);
    expect(show.stdout).toContain(`tcp ipv6, listening on [::1]:${port6}, backlog 11, v6only`);
    waitDumpedGone(images);
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expectRunsOnAndPasses(w, 20);
  });

  test("python3 -m http.server (unmodified): the same page before the dump and after the restore", () => {
    const s = startHttpServer();
    const images = roundTrip(s.pid);
    const inet = filesOf(images).files.filter((f) => f.kind === "inet").map((f) => f.inet!);
    expect(inet.map((n) => [n.family, n.port, n.options.reuseaddr])).toEqual([["ipv4", s.port, true]]);
    const json = cr(["show", join(images, img.FILES), "--json"]);
    expect(json.status).toBe(0);
    const shown = (JSON.parse(json.stdout) as { files: { kind: string; inet?: { address: { ip: string }; port: number } }[] }).files;
    expect(shown.filter((f) => f.kind === "inet").map((f) => [f.inet!.address.ip, f.inet!.port])).toEqual([["127.0.0.1", s.port]]);
    expect(fetchText(s.url)).toBe(s.page);
    expect(fetchText(s.url)).toBe(s.page);
    expect(alive(s.pid)).toBe(true);
  });

  test("a listener shared by a parent and the child that accepts on it: restored once, shared again, the child answers", () => {
    const dir = tempDir("cr-tcpshare-");
    const p = Bun.spawn(["python3", "-c", [
      "import os, socket, time",
      "s = socket.create_server(('127.0.0.1', 0))",
      "child = os.fork()",
      "if child == 0:",
      "    n = 0",
      "    while True:",
      "        c, _ = s.accept(); c.sendall(b'child %d' % os.getpid()); c.close()",
      // Said once the connection is closed: a dump must not find it open.
      "        n += 1; open('.served', 'w').write(str(n)); os.rename('.served', 'served')",
      "open('.pids', 'w').write('%d %d' % (s.getsockname()[1], child)); os.rename('.pids', 'pids')",
      "time.sleep(1000)",
    ].join("\n")], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
    track(p.pid);
    waitFor(() => existsSync(join(dir, "pids")), 10_000, "python3 and its child");
    const [port, child] = readFileSync(join(dir, "pids"), "utf8").split(" ").map(Number);
    track(child!);
    const ask = () => spawnSync("python3", ["-c", `import socket; print(socket.create_connection(('127.0.0.1', ${port}), timeout=5).recv(64).decode())`], { encoding: "utf8" }).stdout.trim();
    expect(ask()).toBe(`child ${child}`);
    waitFor(() => existsSync(join(dir, "served")), 10_000, "the child to close the connection");
    const images = tempDir("cr-images-");
    const d = cr(["dump", "-t", String(p.pid), "-D", images]);
    expect(d.stderr).toBe("");
    expect(d.status).toBe(0);
    expect(filesOf(images).files.filter((f) => f.kind === "inet").length).toBe(1);
    waitDumpedGone(images);
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(alive(child!)).toBe(true);
    expect(ask()).toBe(`child ${child}`);
  });

  test("a port somebody else listens on at restore: 'address in use' before any process exists; restored once it is free", () => {
    const s = startHttpServer();
    const images = tempDir("cr-images-");
    // dump -R: the server runs on, serving, holding its port.
    const d = cr(["dump", "-R", "-t", String(s.pid), "-D", images]);
    expect(d.stderr).toBe("");
    expect(d.status).toBe(0);
    expect(fetchText(s.url)).toBe(s.page);
    // Its pid must be free for a restore: it goes, and another server takes the port.
    process.kill(s.pid, "SIGKILL");
    waitGone(s.pid);
    const dir = tempDir("cr-squatter-");
    const squatter = Bun.spawn(["python3", "-c", [
      "import socket, sys, time",
      "l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
      "l.bind(('127.0.0.1', int(sys.argv[1]))); l.listen()",
      "open('up', 'w').close()",
      "time.sleep(1000)",
    ].join("\n"), String(s.port)], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
    track(squatter.pid);
    waitFor(() => existsSync(join(dir, "up")) || !alive(squatter.pid), 10_000, "the other server");
    expect(alive(squatter.pid)).toBe(true);
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.status).not.toBe(0);
    expect(oneLine(r.stderr)).toContain(`address in use: 127.0.0.1:${s.port}`);
    // Refused before any process was created: the dump's only task, the server, does not exist, not even as a zombie.
    expectNothingRestored(images, [s.pid]);
    process.kill(squatter.pid, "SIGKILL");
    waitGone(squatter.pid);
    const again = cr(["restore", "-D", images, "-d"]);
    expect(again.stderr).toBe("");
    expect(again.status).toBe(0);
    track(s.pid);
    expect(fetchText(s.url)).toBe(s.page);
  });
});

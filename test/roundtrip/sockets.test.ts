// Round trips of unix sockets: the unixsk workload (socket pairs of the three
// types shared by a root and its child with records always unread in them,
// a listening socket the child connects to every iteration) and an
// unmodified python3 reading, after the restore, what was queued in its
// socket pairs before the dump. The workloads check themselves; the tests
// add what only the outside sees: what the images hold, the stale socket
// file at restore, and "address in use" when somebody else listens there.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as img from "../../src/images/index.ts";
import {
  cleanup, cr, dumpRetrying, expectNothingRestored, expectRunsOnAndPasses, oneLine, readProgress, roundTrip, startWorkload,
  tempDir, track, waitDumpedGone, waitFor, waitGone, type Workload,
} from "../helpers/procs.ts";

afterEach(cleanup);

const REC = 16; // unixsk.c's record size

const filesOf = (images: string) => img.decodeImage("files", img.readImageFile(images, img.FILES), img.FILES);

function startUnixsk(): { w: Workload; pids: number[] } {
  const w = startWorkload("unixsk");
  const pids = readFileSync(join(w.dir, "pids"), "utf8").trim().split(/\s+/).map(Number);
  pids.forEach(track);
  expect(pids.length).toBe(2);
  waitFor(() => readProgress(w.dir) >= 5, 10_000, "progress before the dump");
  return { w, pids };
}

/**
 * Dump `pid` into a fresh dir. The child connects to the root's listening
 * socket every iteration; a dump that lands in the moment between its
 * connect and the root's accept (more likely the longer the freeze of the
 * root takes before the child's: about 1 in 20 dumps on an idle machine, up
 * to 2 in 5 on a loaded one) is refused, as designed (a connection waiting to
 * be accepted, or the child's end of it, whose peer no task holds yet), and
 * leaves the tree running: only those refusals are tried again, each one
 * logged, DUMP_ATTEMPTS times at most (see dumpRetrying).
 */
const dumpTree = (pid: number) => dumpRetrying(pid, ["waiting to be accepted", "which no task of the dumped tree holds"]);

const messages = (u: img.UnixSocketImage) => (u.type === "stream" ? u.queue.reduce((a, m) => a + m.length, 0) / REC : u.queue.length);

describe("unix sockets", () => {
  test("socket pairs of every type with unread records, shared by a root and its child, and a listening socket: dumped, restored, they go on", () => {
    const { w } = startUnixsk();
    const images = dumpTree(w.pid);
    const files = filesOf(images).files;
    const unix = files.filter((f) => f.kind === "unix");
    // Each pair holds 6 to 8 records unread across its two queues (see
    // unixsk.c); a control connection caught in flight is a stream pair too,
    // but with a few bytes of "hello N" / "ok N".
    for (const type of ["stream", "dgram", "seqpacket"] as const) {
      const pairs = unix.flatMap((f) => {
        const peer = unix.find((p) => p.id === f.unix!.peer);
        return f.unix!.type === type && peer && f.id < peer.id ? [[f, peer] as const] : [];
      });
      const recorded = pairs.filter(([a, b]) => {
        const n = messages(a.unix!) + messages(b.unix!);
        return n >= 6 && n <= 8 && Number.isInteger(n);
      });
      expect(recorded.length).toBe(1);
      const [a, b] = recorded[0]!;
      const bytes = new TextDecoder().decode(Buffer.concat([...a.unix!.queue, ...b.unix!.queue]));
      expect(bytes).toMatch(new RegExp(`^(${type[0]}\\d{14}\\n)+$`));
      if (type === "dgram") expect([a, b].filter((f) => (f.flags & 0o4000) !== 0).length).toBe(1);
    }
    const listener = unix.filter((f) => f.unix!.state === "listening");
    expect(listener.length).toBe(1);
    expect(new TextDecoder().decode(listener[0]!.unix!.name)).toBe(join(w.dir, "ctl.sock"));
    expect(listener[0]!.unix!.backlog).toBe(7);
    const show = cr(["show", images]);
    expect(show.status).toBe(0);
    expect(show.stdout).toContain(`listening on ${join(w.dir, "ctl.sock")}, backlog 7`);
    waitDumpedGone(images);
    // The dead listener's socket file is still there: restore finds nobody listening at it and binds again.
    expect(lstatSync(join(w.dir, "ctl.sock")).isSocket()).toBe(true);
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expectRunsOnAndPasses(w, 20);
  });

  test("a listening socket whose path somebody else listens at: restore refuses before creating any process, then restores once it is free", () => {
    const { w, pids } = startUnixsk();
    const images = dumpTree(w.pid);
    waitDumpedGone(images);
    const path = join(w.dir, "ctl.sock");
    // Another server takes the path (removing the stale socket file, as servers do).
    const squatter = Bun.spawn(["python3", "-c", [
      "import os, socket, sys, time",
      `p = ${JSON.stringify(path)}`,
      "os.unlink(p)",
      "s = socket.socket(socket.AF_UNIX)",
      "s.bind(p); s.listen()",
      "open(p + '.up', 'w').close()",
      "time.sleep(1000)",
    ].join("\n")], { stdio: ["ignore", "ignore", "ignore"] });
    track(squatter.pid);
    waitFor(() => existsSync(`${path}.up`), 10_000, "the other server");
    const r = cr(["restore", "-D", images, "-d"]);
    expect(r.status).not.toBe(0);
    const line = oneLine(r.stderr);
    expect(line).toContain("address in use");
    expect(line).toContain(path);
    // Refused before any process was created: no task of the dump (both of the workload's) exists, not even as a zombie.
    expectNothingRestored(images, pids);
    process.kill(squatter.pid, "SIGKILL");
    waitGone(squatter.pid);
    const again = cr(["restore", "-D", images, "-d"]);
    expect(again.stderr).toBe("");
    expect(again.status).toBe(0);
    expectRunsOnAndPasses(w);
  });

  test("python3 (unmodified) reads after the restore what its socket pairs held unread at the dump; its abstract listener and unbound socket work", () => {
    const dir = tempDir("cr-pysock-");
    const script = [
      "import os, socket, time",
      "a, b = socket.socketpair()",
      "b.sendall(bytes(range(256)) * 40)",
      "a.sendall(b'the other way')",
      "c, d = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)",
      "for m in (b'one', b'', b'three'): c.send(m)",
      "b.shutdown(socket.SHUT_WR)",
      // A stream whose other end was closed with bytes still to read.
      "e, f = socket.socketpair()",
      "f.send(b'bye'); f.close()",
      // A listening socket with an abstract name, and a socket neither bound nor connected.
      "name = '\\0cr-test-%d' % os.getpid()",
      "l = socket.socket(socket.AF_UNIX); l.bind(name); l.listen(3)",
      "u = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)",
      "open('ready', 'w').close()",
      "while not os.path.exists('go'): time.sleep(0.02)",
      "got = a.recv(1 << 20)",
      "while True:",
      "    more = a.recv(1 << 20)",
      "    if not more: break",
      "    got += more",
      "d.setblocking(False)",
      "dg = [d.recv(64) for _ in range(3)]",
      "try:",
      "    d.recv(64); dg.append(b'EXTRA')",
      "except BlockingIOError: pass",
      "closed = [e.recv(64), e.recv(64)]",
      "k = socket.socket(socket.AF_UNIX); k.connect(name); k.send(b'hi')",
      "conn, _ = l.accept()",
      "kinds = (u.type, u.getsockname(), l.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))",
      "ok = got == bytes(range(256)) * 40 and b.recv(64) == b'the other way' and dg == [b'one', b'', b'three']",
      "ok = ok and closed == [b'bye', b''] and conn.recv(8) == b'hi' and kinds == (socket.SOCK_SEQPACKET, '', 1)",
      "open('result', 'w').write('PASS' if ok else 'FAIL %d %r %r %r' % (len(got), dg, closed, kinds))",
    ].join("\n");
    const p = Bun.spawn(["python3", "-c", script], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
    track(p.pid);
    waitFor(() => existsSync(join(dir, "ready")), 10_000, "python3 with its sockets");
    const images = roundTrip(p.pid);
    const unix = filesOf(images).files.filter((f) => f.kind === "unix").map((f) => f.unix!);
    const connected = unix.filter((u) => u.state === "connected");
    expect(connected.map((u) => u.queue.reduce((n, m) => n + m.length, 0)).sort((x, y) => x - y)).toEqual([0, 3, 8, 13, 10240]);
    expect(connected.find((u) => u.type === "stream" && u.shutdown === 1)).toBeDefined();
    // The end whose peer was closed: no peer, shut down both ways.
    expect(connected.find((u) => u.peer === undefined && u.shutdown === 3 && u.queue.length === 1)).toBeDefined();
    const listening = unix.filter((u) => u.state === "listening");
    expect(listening.map((u) => new TextDecoder().decode(u.name))).toEqual([`\0cr-test-${p.pid}`]);
    expect(unix.filter((u) => u.state === "unbound").map((u) => u.type)).toEqual(["seqpacket"]);
    writeFileSync(join(dir, "go"), "");
    waitFor(() => existsSync(join(dir, "result")), 10_000, "python3's result");
    expect(readFileSync(join(dir, "result"), "utf8")).toBe("PASS");
  });
});

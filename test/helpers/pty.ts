// Pseudo-terminals for tests: a python3 host opens a pty, starts a command as
// the leader of a new session with the pty slave as its controlling terminal
// and stdio (like a terminal emulator starting a shell), copies everything
// written to the terminal into DIR/out, and writes what the test types (into
// the FIFO DIR/in) to the terminal; its own errors go to DIR/host.err. The
// host and the leader are tracked for cleanup(); the host ends once nothing
// holds the terminal any more.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir, track, waitFor } from "./procs.ts";

const HOST = `
import errno, fcntl, os, pty, select, sys, termios
out_path, in_path, leader_path, err_path = sys.argv[1:5]
argv = sys.argv[5:]
# Its own errors to a file: what the test runner gave it may be anything (a socket).
os.dup2(os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), 2)
os.mkfifo(in_path, 0o600)
m, s = pty.openpty()
pid = os.fork()
if pid == 0:
    os.setsid()
    fcntl.ioctl(s, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(s, fd)
    os.execvp(argv[0], argv)
os.close(s)
with open(leader_path + ".tmp", "w") as f:
    f.write(str(pid))
os.rename(leader_path + ".tmp", leader_path)
inp = os.open(in_path, os.O_RDWR | os.O_NONBLOCK)
out = open(out_path, "ab", buffering=0)
while True:
    r, _, _ = select.select([m, inp], [], [])
    if m in r:
        try:
            data = os.read(m, 65536)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            break
        out.write(data)
    if inp in r:
        os.write(m, os.read(inp, 4096))
os.waitpid(pid, 0)
`;

export interface PtyHost {
  /** The python3 host (holds the pty master). */
  pid: number;
  /** The session leader started on the terminal. */
  leader: number;
  dir: string;
  /** Everything written to the terminal so far (with the terminal's \r\n). */
  output(): string;
  /** Type `text` on the terminal. */
  type(text: string): void;
}

/** Start `argv` as a session leader on a new pty. */
export function startPtyHost(argv: string[], opts: { cwd?: string } = {}): PtyHost {
  const dir = tempDir("cr-pty-");
  const out = join(dir, "out");
  writeFileSync(out, "");
  const proc = Bun.spawn(["python3", "-c", HOST, out, join(dir, "in"), join(dir, "leader"), join(dir, "host.err"), ...argv], {
    stdio: ["ignore", "ignore", "ignore"],
    cwd: opts.cwd ?? dir,
  });
  track(proc.pid);
  waitFor(() => existsSync(join(dir, "leader")), 10_000, "the pty host to start its session leader");
  const leader = Number(readFileSync(join(dir, "leader"), "utf8"));
  track(leader);
  return {
    pid: proc.pid,
    leader,
    dir,
    output: () => readFileSync(out, "utf8"),
    type: (text) => writeFileSync(join(dir, "in"), text),
  };
}

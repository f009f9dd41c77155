// python3 counters for round trips of unmodified programs: a loop that writes
// its count to DIR/progress every 10 ms, optionally after some setup, with a
// second thread, and failing (DIR/result = FAIL) once a check stops holding.
import { chmodSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { track } from "./procs.ts";

// The system's python3: one under /root (pyenv) is out of reach of uid 65534.
export const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

/** ctypes for seccomp: libc (with errno), struct sock_filter (F) and struct sock_fprog (P). */
export const SECCOMP_CTYPES = [
  "import ctypes, errno",
  "libc = ctypes.CDLL(None, use_errno=True)",
  "class F(ctypes.Structure): _fields_ = [('code', ctypes.c_ushort), ('jt', ctypes.c_ubyte), ('jf', ctypes.c_ubyte), ('k', ctypes.c_uint)]",
  "class P(ctypes.Structure): _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.POINTER(F))]",
];

export interface PythonCounter {
  /** Run before (e.g. setpriv ...). */
  prefix?: string[];
  /** Python lines run before the loop. */
  setup?: string[];
  /** Start a second (sleeping) thread after the setup. */
  thread?: boolean;
  /** A Python expression checked every iteration: once false, DIR/result says FAIL and the loop ends. */
  check?: string;
}

/** Start the counter in `dir` (made 0777: any uid may write there); returns its pid, tracked for cleanup. */
export function startPythonCounter(dir: string, o: PythonCounter = {}): number {
  chmodSync(dir, 0o777);
  const script = [
    "import os, threading, time",
    ...(o.setup ?? []),
    ...(o.thread ? ["threading.Thread(target=lambda: time.sleep(10**6), daemon=True).start()"] : []),
    "n = 0",
    "while True:",
    ...(o.check ? [`    if not (${o.check}): open('${dir}/result', 'w').write('FAIL'); break`] : []),
    "    n += 1",
    `    open('${dir}/p.tmp', 'w').write(str(n))`,
    `    os.rename('${dir}/p.tmp', '${dir}/progress')`,
    "    time.sleep(0.01)",
  ].join("\n");
  const p = Bun.spawn([...(o.prefix ?? []), PYTHON, "-c", script], { stdio: ["ignore", "ignore", "ignore"], cwd: dir });
  track(p.pid);
  return p.pid;
}

/** The counter's last count (0 before the first). */
export function pythonProgress(dir: string): number {
  try {
    return Number(readFileSync(join(dir, "progress"), "utf8"));
  } catch {
    return 0;
  }
}

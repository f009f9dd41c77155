// /proc/PID/timers: the POSIX timers (timer_create) of a process.

export interface ProcPosixTimer {
  id: number;
  signo: number;
  /** sigev_value as the kernel keeps it (a pointer or an int). */
  sival: bigint;
  /** Raw sigev_notify: SIGEV_SIGNAL 0, SIGEV_NONE 1, SIGEV_THREAD 2, | SIGEV_THREAD_ID 4. */
  notify: number;
  /** The thread notified (SIGEV_THREAD_ID), else 0. */
  tid: number;
  clockId: number;
}

const NOTIFY: Record<string, number> = { signal: 0, none: 1, thread: 2 };
export const SIGEV_THREAD_ID = 4;

/** Parse the blocks of `ID: / signal: / notify: / ClockID:` lines. */
export function parseTimers(text: string): ProcPosixTimer[] {
  const out: ProcPosixTimer[] = [];
  let cur: Partial<ProcPosixTimer> | null = null;
  const finish = () => {
    if (!cur) return;
    const { id, signo, sival, notify, tid, clockId } = cur;
    if (id === undefined || signo === undefined || sival === undefined || notify === undefined || clockId === undefined) {
      throw new Error(`incomplete timer entry ${JSON.stringify(cur, (_, v) => (typeof v === "bigint" ? v.toString() : v))}`);
    }
    out.push({ id, signo, sival, notify, tid: tid ?? 0, clockId });
    cur = null;
  };
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const m = /^(\w+):\s*(.*)$/.exec(line);
    if (!m) throw new Error(`unexpected line ${JSON.stringify(line)}`);
    const [, key, val] = m as unknown as [string, string, string];
    if (key === "ID") {
      finish();
      cur = { id: Number(val) };
      continue;
    }
    if (!cur) throw new Error(`${key} before ID`);
    if (key === "signal") {
      const s = /^(\d+)\/([0-9a-f]+)$/.exec(val);
      if (!s) throw new Error(`bad signal line ${JSON.stringify(val)}`);
      cur.signo = Number(s[1]);
      cur.sival = BigInt(`0x${s[2]}`);
    } else if (key === "notify") {
      const n = /^(\w+)\/(pid|tid)\.(\d+)$/.exec(val);
      const base = n ? NOTIFY[n[1]!] : undefined;
      if (!n || base === undefined) throw new Error(`bad notify line ${JSON.stringify(val)}`);
      cur.notify = base | (n[2] === "tid" ? SIGEV_THREAD_ID : 0);
      cur.tid = n[2] === "tid" ? Number(n[3]) : 0;
    } else if (key === "ClockID") {
      cur.clockId = Number(val);
    }
  }
  finish();
  return out;
}

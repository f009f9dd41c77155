// /proc/PID/stat (and /proc/PID/task/TID/stat). The comm field sits between
// the first '(' and the LAST ')' and may itself hold spaces and parentheses.

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  ttyNr: number;
  tpgid: number;
  flags: number;
  minflt: number;
  majflt: number;
  utime: number;
  stime: number;
  priority: number;
  nice: number;
  numThreads: number;
  startTime: number;
  vsize: number;
  rss: number;
  startCode: number;
  endCode: number;
  startStack: number;
  exitSignal: number;
  processor: number;
  startData: number;
  endData: number;
  startBrk: number;
  argStart: number;
  argEnd: number;
  envStart: number;
  envEnd: number;
  exitCode: number;
}

export function parseStat(text: string): ProcStat {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  const bad = (why: string) => new Error(`malformed stat (${why}): ${JSON.stringify(text.slice(0, 120))}`);
  if (open < 0 || close < open) throw bad("no (comm)");
  const rest = text.slice(close + 1).trim().split(/\s+/);
  // rest[0] is field 3 (state); field N (man 5 proc numbering) is rest[N - 3].
  const f = (n: number): number => {
    const v = rest[n - 3];
    if (v === undefined || !/^-?\d+$/.test(v)) throw bad(`field ${n} is ${JSON.stringify(v)}`);
    return Number(v);
  };
  const pid = text.slice(0, open).trim();
  if (!/^\d+$/.test(pid)) throw bad("pid");
  const state = rest[0] ?? "";
  if (state.length !== 1) throw bad("state");
  return {
    pid: Number(pid),
    comm: text.slice(open + 1, close),
    state,
    ppid: f(4), pgrp: f(5), session: f(6), ttyNr: f(7), tpgid: f(8), flags: f(9),
    minflt: f(10), majflt: f(12), utime: f(14), stime: f(15), priority: f(18), nice: f(19),
    numThreads: f(20), startTime: f(22), vsize: f(23), rss: f(24),
    startCode: f(26), endCode: f(27), startStack: f(28), exitSignal: f(38), processor: f(39),
    startData: f(45), endData: f(46), startBrk: f(47), argStart: f(48), argEnd: f(49),
    envStart: f(50), envEnd: f(51), exitCode: f(52),
  };
}

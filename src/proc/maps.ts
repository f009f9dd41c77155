// /proc/PID/maps and the VmFlags of /proc/PID/smaps.

export interface MapsEntry {
  start: number;
  end: number;
  read: boolean;
  write: boolean;
  exec: boolean;
  shared: boolean;
  offset: number;
  major: number;
  minor: number;
  inode: number;
  /** "" for anonymous memory, "[heap]", "[vdso]", a file path (spaces kept) ... */
  path: string;
  /** The path carried the kernel's " (deleted)" suffix, which is stripped from `path`. */
  deleted: boolean;
}

// start-end perms offset major:minor inode [padding path]
const LINE = /^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])([x-])([ps]) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+)(?: +(.*))?$/;
const HEADER = /^[0-9a-f]+-[0-9a-f]+ /;
const DELETED = " (deleted)";

/** A hex number that must survive the trip to a double exactly (all user addresses and [vsyscall] do). */
function hex(s: string, line: string): number {
  const v = parseInt(s, 16);
  if (!Number.isSafeInteger(v) && BigInt(v) !== BigInt("0x" + s)) {
    throw new Error(`maps value 0x${s} is not exactly representable: ${JSON.stringify(line)}`);
  }
  return v;
}

export function parseMapsLine(line: string): MapsEntry {
  const m = LINE.exec(line);
  if (!m) throw new Error(`malformed maps line: ${JSON.stringify(line)}`);
  let path = m[11] ?? "";
  const deleted = path.endsWith(DELETED);
  if (deleted) path = path.slice(0, -DELETED.length);
  return {
    start: hex(m[1]!, line),
    end: hex(m[2]!, line),
    read: m[3] === "r",
    write: m[4] === "w",
    exec: m[5] === "x",
    shared: m[6] === "s",
    offset: hex(m[7]!, line),
    major: parseInt(m[8]!, 16),
    minor: parseInt(m[9]!, 16),
    inode: Number(m[10]),
    path,
    deleted,
  };
}

/** Every non-empty line of /proc/PID/maps; throws an Error naming the first malformed line. */
export function parseMaps(text: string): MapsEntry[] {
  return text.split("\n").filter((l) => l.length > 0).map(parseMapsLine);
}

/** VMA start -> its VmFlags codes (e.g. ["rd","wr","mr","mw","me","ac"]), from /proc/PID/smaps. */
export function parseSmapsVmFlags(text: string): Map<number, string[]> {
  const out = new Map<number, string[]>();
  let current: number | undefined;
  for (const line of text.split("\n")) {
    if (HEADER.test(line)) current = parseMapsLine(line).start;
    else if (line.startsWith("VmFlags:")) {
      if (current === undefined) throw new Error(`smaps VmFlags before any mapping: ${JSON.stringify(line)}`);
      out.set(current, line.slice("VmFlags:".length).trim().split(/\s+/).filter(Boolean));
    }
  }
  return out;
}

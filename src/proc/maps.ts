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

/** What cr reads of a VMA in /proc/PID/smaps: its VmFlags codes, and its protection key where the kernel has them. */
export interface SmapsEntry {
  vmFlags: string[];
  /** "ProtectionKey:" (memory protection keys, x86 PKU): 0 is the default key. */
  pkey?: number;
}

/** VMA start -> its smaps fields (VmFlags such as ["rd","wr","mr","mw","me","ac"], ProtectionKey). */
export function parseSmaps(text: string): Map<number, SmapsEntry> {
  const out = new Map<number, SmapsEntry>();
  let current: SmapsEntry | undefined;
  for (const line of text.split("\n")) {
    if (HEADER.test(line)) {
      current = { vmFlags: [] };
      out.set(parseMapsLine(line).start, current);
    } else if (line.startsWith("VmFlags:") || line.startsWith("ProtectionKey:")) {
      if (current === undefined) throw new Error(`smaps field before any mapping: ${JSON.stringify(line)}`);
      const value = line.slice(line.indexOf(":") + 1).trim();
      if (line.startsWith("VmFlags:")) current.vmFlags = value.split(/\s+/).filter(Boolean);
      else current.pkey = Number(value);
    }
  }
  return out;
}

// /proc/PID/mountinfo: which mount to reach a filesystem through. Pure: text
// in, typed values out.

export interface Mount {
  major: number;
  minor: number;
  /** The directory of the filesystem mounted here ("/": all of it). */
  root: string;
  /** Where it is mounted, in the task's mount namespace. */
  mountPoint: string;
}

/** Paths in mountinfo have space, tab, newline and backslash as \ooo. */
const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

const LINE = /^\d+ \d+ (\d+):(\d+) (\S+) (\S+) /;

export function parseMountinfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const m = LINE.exec(line);
    if (!m) throw new Error(`mountinfo: line "${line}" does not parse`);
    out.push({ major: Number(m[1]), minor: Number(m[2]), root: unescape(m[3]!), mountPoint: unescape(m[4]!) });
  }
  return out;
}

/**
 * A mount of device major:minor, preferring one of the whole filesystem (a
 * bind mount of a subdirectory shows the paths outside it oddly), or undefined.
 */
export function mountOf(mounts: Mount[], major: number, minor: number): Mount | undefined {
  const on = mounts.filter((m) => m.major === major && m.minor === minor);
  return on.find((m) => m.root === "/") ?? on[0];
}

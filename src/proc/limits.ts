// /proc/PID/limits.

export const RLIM_INFINITY = 0xffffffffffffffffn;

const RESOURCES: [string, number][] = [
  ["Max cpu time", 0], ["Max file size", 1], ["Max data size", 2], ["Max stack size", 3], ["Max core file size", 4],
  ["Max resident set", 5], ["Max processes", 6], ["Max open files", 7], ["Max locked memory", 8],
  ["Max address space", 9], ["Max file locks", 10], ["Max pending signals", 11], ["Max msgqueue size", 12],
  ["Max nice priority", 13], ["Max realtime priority", 14], ["Max realtime timeout", 15],
];

export interface Limit {
  name: string;
  resource: number;
  soft: bigint;
  hard: bigint;
  units: string;
}

export function parseLimits(text: string): Limit[] {
  const out: Limit[] = [];
  for (const line of text.split("\n")) {
    const r = RESOURCES.find(([name]) => line.startsWith(name + " "));
    if (!r) continue;
    const cols = line.slice(r[0].length).trim().split(/\s+/);
    const v = (s: string | undefined) => (s === "unlimited" ? RLIM_INFINITY : BigInt(s ?? "0"));
    out.push({ name: r[0], resource: r[1], soft: v(cols[0]), hard: v(cols[1]), units: cols[2] ?? "" });
  }
  return out;
}

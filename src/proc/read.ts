// The only file of src/proc with I/O: reading /proc.
import { readdirSync, readFileSync } from "node:fs";

export function readProcText(pid: number | "self", rel: string): string {
  return readFileSync(`/proc/${pid}/${rel}`, "utf8");
}

export function readProcBytes(pid: number | "self", rel: string): Uint8Array {
  return new Uint8Array(readFileSync(`/proc/${pid}/${rel}`));
}

function numericEntries(dir: string): number[] {
  return readdirSync(dir).filter((n) => /^\d+$/.test(n)).map(Number).sort((a, b) => a - b);
}

export function listTids(pid: number): number[] {
  return numericEntries(`/proc/${pid}/task`);
}

export function listFds(pid: number): number[] {
  return numericEntries(`/proc/${pid}/fd`);
}

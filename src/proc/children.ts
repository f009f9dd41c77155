// /proc/PID/task/TID/children: space-separated pids.
export function parseChildren(text: string): number[] {
  return text.split(/\s+/).filter(Boolean).map(Number);
}

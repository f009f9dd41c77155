#!/usr/bin/env bash
# `make demo`: start a sample program, dump it, restore it, show it continuing.
# The sample (test/workloads/counter) appends consecutive numbers to a file and
# checks its own file positions; after the restore it must go on with the next
# number, no gap, no repeat.
set -euo pipefail
cd "$(dirname "$0")/.."
CR="$PWD/dist/cr"
work=$(mktemp -d /tmp/cr-demo.XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$CR" check | tail -1
mkdir -p "$work/app" "$work/images"
test/workloads/bin/counter "$work/app" </dev/null >/dev/null 2>&1 &
pid=$!
while [ ! -e "$work/app/ready" ]; do sleep 0.05; done
sleep 0.5
echo "started counter, pid $pid; last numbers written: $(tail -n 3 "$work/app/counter.log" | tr '\n' ' ')"

"$CR" dump -t "$pid" -D "$work/images" -v
wait "$pid" 2>/dev/null || true   # reap it: the pid must be free for the restore
echo "dumped and killed; images: $(du -sh "$work/images" | cut -f1) in $work/images"
last=$(tail -n 1 "$work/app/counter.log")
echo "last number before the dump: $last"

"$CR" restore -D "$work/images" -d -v
echo "restored pid $pid: $(tr '\0' ' ' < /proc/$pid/cmdline)"
sleep 0.5
echo "after restore: $(awk -v l="$last" '$1>l' "$work/app/counter.log" | head -n 3 | tr '\n' ' ')..."
touch "$work/app/stop"
for _ in $(seq 1 100); do [ -e "$work/app/result" ] && break; sleep 0.05; done
echo "the program's own verdict: $(cat "$work/app/result" 2>/dev/null || echo 'no result')"
grep -q '^PASS' "$work/app/result"

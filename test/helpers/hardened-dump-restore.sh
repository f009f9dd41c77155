#!/bin/sh
# Run inside `unshare --mount --propagation private`: every mount below goes
# with that namespace. MODE:
#   noexec-tmp BIN   /tmp stays, remounted noexec; cr and WL run from a tmpfs
#                    mounted at BIN (this clone itself may be under /tmp);
#   chroot ROOT      a chroot at ROOT (a tmpfs) holding only CR, the libraries
#                    `ldd CR` names and WL, with /proc, three device nodes made
#                    here (never the host's /dev), no /tmp, a read-only root
#                    and a writable tmpfs at /images.
# Then, there, with TMPDIR unset: cr check, the static workload WL started,
# dumped, restored, and its own verdict. Prints "pid PID", "progress A -> B",
# "result ...".
set -eu
MODE=$1; CR=$2; WL=$3
case "$MODE" in
noexec-tmp)
  BIN=$4
  mount --bind /tmp /tmp
  mount -o remount,bind,noexec /tmp
  grep -q ' /tmp /tmp [^ ]*noexec' /proc/self/mountinfo || { echo "/tmp is not noexec"; exit 1; }
  # Mounted after the remount, so that it shows even when BIN is under /tmp.
  mount -t tmpfs tmpfs "$BIN"
  cp "$CR" "$BIN/cr"
  cp "$WL" "$BIN/wl"
  work=$(mktemp -d /tmp/cr-hardened-XXXXXX)
  run() { env -u TMPDIR "$@"; }
  cr=$BIN/cr; wl=$BIN/wl; dir=$work/wl; images=$work/img; host_dir=$dir
  ;;
chroot)
  ROOT=$4
  mount -t tmpfs tmpfs "$ROOT"
  mkdir -p "$ROOT/bin" "$ROOT/proc" "$ROOT/dev" "$ROOT/images"
  cp "$CR" "$ROOT/bin/cr"
  cp "$WL" "$ROOT/bin/wl"
  work=
  for lib in $(ldd "$CR" | grep -o '/[^ ]*'); do
    mkdir -p "$ROOT$(dirname "$lib")"
    cp "$lib" "$ROOT$lib"
  done
  mknod -m 666 "$ROOT/dev/null" c 1 3
  mknod -m 666 "$ROOT/dev/zero" c 1 5
  mknod -m 666 "$ROOT/dev/urandom" c 1 9
  mount -t proc proc "$ROOT/proc"
  mount -t tmpfs tmpfs "$ROOT/images"
  mount -o remount,ro "$ROOT"
  if touch "$ROOT/probe" 2>/dev/null; then echo "the chroot's root is writable"; exit 1; fi
  if [ -e "$ROOT/tmp" ]; then echo "the chroot has a /tmp"; exit 1; fi
  run() { env -u TMPDIR chroot "$ROOT" "$@"; }
  cr=/bin/cr; wl=/bin/wl; dir=/images/wl; images=/images/img; host_dir=$ROOT/images/wl
  ;;
*) echo "unknown mode $MODE"; exit 1 ;;
esac
mkdir -p "$host_dir"
# A simple command, each program exec'ing the next: the workload is the one process $! names.
# Its stdio on /dev/null: the test runner's pipes are not the tree's to dump.
if [ "$MODE" = chroot ]; then
  env -u TMPDIR chroot "$ROOT" "$wl" "$dir" </dev/null >/dev/null 2>&1 &
else
  env -u TMPDIR "$wl" "$dir" </dev/null >/dev/null 2>&1 &
fi
pid=$!
# Whatever happens, the workload (or what was restored at its pid) does not
# outlive the script, and neither does its work directory under /tmp.
trap 'kill -9 "$pid" 2>/dev/null || true; if [ -n "${work:-}" ]; then rm -rf "$work"; fi' EXIT
echo "pid $pid"
i=0
while [ ! -e "$host_dir/ready" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
run "$cr" check > /dev/null
run "$cr" dump -t "$pid" -D "$images"
wait "$pid" || true
run "$cr" restore -D "$images" -d
p1=$(cat "$host_dir/progress")
sleep 0.5
p2=$(cat "$host_dir/progress")
echo "progress $p1 -> $p2"
touch "$host_dir/stop"
i=0
while [ ! -e "$host_dir/result" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
echo "result $(cat "$host_dir/result" 2>/dev/null || echo none)"

#!/bin/bash
# The isolation suite's unlimited fork bomb with no runtime at all: the victim (512 cpu
# shares, as the suite's victim pod) and the bomb (1024 shares, no pids limit, as the
# suite's "unlimited" pod) in two sibling cgroups made here by hand, the victim's HTTP
# latency sampled over loopback. It tells the kernel's share of what a runtime's figures
# show. Needs root and gcc with glibc's static libraries; removes what it made.
#   e2e/bench/isolation_bare.sh [ROUNDS] [SECONDS]
set -u
rounds=${1:-3}
seconds=${2:-6}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/skb-bare-XXXXXX)
group=skiff-bare-$$
controllers="cpu cpuacct pids memory"
port=18080

# Kills every process of one of the two cgroups, the bomb's forks included.
kill_group() {
  local i procs
  for i in $(seq 100); do
    procs=$(cat /sys/fs/cgroup/pids/$group/$1/cgroup.procs 2>/dev/null)
    [ -z "$procs" ] && return
    kill -9 $procs 2>/dev/null
    sleep 0.1
  done
}
cleanup() {
  kill_group bomb
  kill_group victim
  wait
  for c in $controllers; do rmdir /sys/fs/cgroup/$c/$group/victim /sys/fs/cgroup/$c/$group/bomb /sys/fs/cgroup/$c/$group 2>/dev/null; done
  rm -rf "$work" /tmp/victim-write /tmp/victim-read
}
trap cleanup EXIT
trap 'exit 130' INT TERM

gcc -static -O2 -pthread -o "$work/isoload" "$here/isoload.c" || exit 1
for c in $controllers; do mkdir -p /sys/fs/cgroup/$c/$group/victim /sys/fs/cgroup/$c/$group/bomb || exit 1; done
echo 512 > /sys/fs/cgroup/cpu/$group/victim/cpu.shares

# Runs a command in one of the two cgroups.
in_group() {
  local g=$1
  shift
  bash -c 'g=$1; shift; for c in '"$controllers"'; do echo $$ > /sys/fs/cgroup/$c/'"$group"'/$g/cgroup.procs; done; exec "$@"' _ "$g" "$@"
}

(cd "$work" && in_group victim "$work/isoload" victim $port) > "$work/victim.log" 2>&1 &
sleep 3
for r in $(seq "$rounds"); do
  "$work/isoload" client 127.0.0.1 $port 100 "$seconds" > "$work/alone-$r" || exit 1
  in_group bomb "$work/isoload" fork $((seconds + 30)) 3000 > /dev/null 2>&1 &
  "$work/isoload" client 127.0.0.1 $port 100 "$seconds" > "$work/bomb-$r" || exit 1
  echo "round $r: bomb pids at end $(cat /sys/fs/cgroup/pids/$group/bomb/pids.current)"
  kill_group bomb
  sleep 2
done
# Nearest-rank percentiles, as the suite reckons them: the alone windows pooled.
ms() { awk 'NF == 2 { print $2 / 1e6 }' "$@" | sort -g; }
pct() { awk -v p="$1" '{ v[NR] = $1 } END { k = int(p / 100 * NR + 0.999999); if (k < 1) k = 1; print v[k] }'; }
ms "$work"/alone-* > "$work/alone.ms"
a50=$(pct 50 < "$work/alone.ms")
a99=$(pct 99 < "$work/alone.ms")
echo "victim alone: http p50 $a50 ms, p99 $a99 ms"
for r in $(seq "$rounds"); do
  ms "$work/bomb-$r" > "$work/bomb.ms"
  awk -v r="$r" -v b50="$(pct 50 < "$work/bomb.ms")" -v b99="$(pct 99 < "$work/bomb.ms")" -v a50="$a50" -v a99="$a99" \
    'BEGIN { printf "round %d beside the bomb: http p50 %.1fx, p99 %.1fx\n", r, b50 / a50, b99 / a99 }'
done

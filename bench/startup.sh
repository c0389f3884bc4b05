#!/usr/bin/env bash
# Start-up cost of each job: milliseconds from exec to ready (natbpf creates
# its --ready-file once every hook is attached and every source listens)
# and peak RSS (VmHWM) over a 1 s run, median of RUNS runs, trace and clash
# in a fresh namespace, drops over the host's namespaces.
# Usage: bench/startup.sh BUILD_DIR [RUNS]; prints "job ready_ms rss_kB" rows.
set -euo pipefail
build=${1:?usage: bench/startup.sh BUILD_DIR [RUNS]}
runs=${2:-7}
natbpf=$build/natbpf
ns=nbstart$$
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null' EXIT
ip -n "$ns" link set lo up

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

one() { # JOB ARGS... -> "ready_ms rss_kB"
	local ready=/dev/shm/natbpf-ready.$$ t0 t1 pid rss
	rm -f "$ready"
	t0=$(date +%s%N)
	"$natbpf" "$@" --ready-file "$ready" >/dev/null 2>&1 &
	pid=$!
	until [ -e "$ready" ]; do
		kill -0 "$pid" 2>/dev/null || { echo "natbpf $* exited before ready" >&2; exit 1; }
		sleep 0.001
	done
	t1=$(date +%s%N)
	sleep 1
	rss=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
	kill -INT "$pid"
	wait "$pid" || true
	echo "$(((t1 - t0) / 1000000)) $rss"
}

for job in trace clash drops; do
	case $job in
	trace) args=(trace --netns "$ns" --dport 9) ;;
	clash) args=(clash --netns "$ns") ;;
	drops) args=(drops) ;;
	esac
	one "${args[@]}" >/dev/null # warm-up: page cache, module loads
	results=$(for _ in $(seq "$runs"); do one "${args[@]}"; done)
	echo "$job $(awk '{print $1}' <<<"$results" | median) $(awk '{print $2}' <<<"$results" | median)"
done

#!/usr/bin/env bash
# Kernel time per run of each BPF program natbpf (or the floor peer)
# attaches, from the kernel's own accounting: with kernel.bpf_stats_enabled=1
# the kernel adds up run_cnt and run_time_ns per program, so the cost of a
# program is read directly, not inferred from packet rates, which other work
# on a shared machine makes noisy. The flood and topologies are those of
# bench/overhead.sh (a drop flood, the same in a namespace that tracks
# connections, the DNAT-forwarded path); the sysctl is restored on exit.
# Only what a BPF program costs is seen here: the nftables chains natbpf
# trace adds are measured by overhead.sh's packet rates.
# Usage: [NATBPF=BINARY] bench/progcost.sh [BUILD_DIR] [PACKETS] [ROW...]
# (NATBPF: another natbpf binary, e.g. the one before a change, for an A/B)
# ROW: floor drops trace clash-conntrack trace-forward clash-forward (default: all).
# Prints: row program run_cnt ns/run, and the flood's packets/s.
set -euo pipefail
build=${1:-build}
count=${2:-300000}
shift 2 2>/dev/null || shift $#
rows=${*:-floor drops trace clash-conntrack trace-forward clash-forward}
natbpf=${NATBPF:-$build/natbpf}
flood=$build/udpflood
floor=$build/kfree_floor
source "$(dirname "$0")/topology.sh"
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
	set +e
	[ -n "${pid:-}" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[ -n "${sink:-}" ] && kill "$sink" 2>/dev/null && wait "$sink" 2>/dev/null
	bench_topology_down
	sysctl -qw kernel.bpf_stats_enabled="$stats_was"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bench_topology_up nbcost$$
ip netns exec "$fws" "$build/udpsink" 8080 >/dev/null &
sink=$!
sysctl -qw kernel.bpf_stats_enabled=1

# name run_cnt run_time_ns of every program the process PID holds (its
# fds' prog_id: this bpftool lists no pids)
prog_stats() {
	local ids
	ids=$(awk '/^prog_id:/ {print $2}' /proc/"$1"/fdinfo/* 2>/dev/null | sort -u | paste -sd,)
	bpftool -j prog show | jq -r --arg ids "[${ids}]" \
		'($ids | fromjson) as $w | .[] | select(.id as $i | $w | index($i)) |
		"\(.name) \(.run_cnt // 0) \(.run_time_ns // 0)"' | sort
}
row() { # LABEL FLOOD_NS ADDR PORT CMD...
	local label=$1 target=$2 addr=$3 port=$4 ready before after pps
	shift 4
	ready=$(mktemp -u)
	if [ "$1" = floor ]; then
		"$floor" "$build/kfree_floor.bpf.o" "$ready" >/dev/null 2>&1 &
	else
		"$natbpf" "$@" --ready-file "$ready" >/dev/null 2>&1 &
	fi
	pid=$!
	for _ in $(seq 300); do [ -e "$ready" ] && break; sleep 0.1; done
	[ -e "$ready" ] || { echo "$label: did not get ready" >&2; exit 1; }
	before=$(prog_stats "$pid")
	pps=$(ip netns exec "$target" "$flood" "$addr" "$port" "$count")
	after=$(prog_stats "$pid")
	join <(echo "$before") <(echo "$after") | awk -v l="$label" '$4 > $2 {
		printf "%s %s %d %.1f\n", l, $1, $4 - $2, ($5 - $3) / ($4 - $2) }'
	echo "$label flood ${pps} packets/s"
	kill -INT "$pid" 2>/dev/null || true
	wait "$pid" || true
	rm -f "$ready"
	pid=""
}
for r in $rows; do
	case $r in
	floor) row floor "$ns" 127.0.0.1 9 floor ;;
	drops) row drops "$ns" 127.0.0.1 9 drops --duration 600s ;;
	trace) row trace "$ns" 127.0.0.1 9 trace --netns "$ns" --dport 5353 --duration 600s ;;
	clash-conntrack) row clash-conntrack "$ctns" 127.0.0.1 9 clash --netns "$ctns" --duration 600s ;;
	trace-forward) row trace-forward "$fwc" 10.77.0.1 80 trace --netns "$fwr" --dport 5353 --duration 600s ;;
	clash-forward) row clash-forward "$fwc" 10.77.0.1 80 clash --netns "$fwr" --duration 600s ;;
	*) echo "unknown row $r (floor drops trace clash-conntrack trace-forward clash-forward)" >&2; exit 2 ;;
	esac
done

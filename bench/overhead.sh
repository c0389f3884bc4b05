#!/usr/bin/env bash
# Kernel-side cost of natbpf: UDP packets per second that a sender in a
# namespace pushes into an nftables drop rule (every packet dropped, so the
# kfree_skb program runs for each), without natbpf, with `natbpf drops`
# (counts every drop) and with `natbpf trace` on another port (the tracing
# table's rules are evaluated for every packet). A second namespace tracks
# connections, so every dropped packet carries an unconfirmed conntrack entry:
# the worst case for `natbpf clash`, which must tell a firewall drop from an
# insert failure for each. Median of 5 runs each; natbpf's peak RSS (VmHWM)
# is printed beside its rows.
# Usage: bench/overhead.sh [BUILD_DIR] [PACKETS]
set -euo pipefail
build=${1:-build}
count=${2:-300000}
natbpf=$build/natbpf
flood=$build/udpflood
ns=nbbench$$
cleanup() {
	[ -n "${pid:-}" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	ip netns del "$ns" 2>/dev/null || true
	ip netns del "$ctns" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" nft add table inet b
ip netns exec "$ns" nft 'add chain inet b out { type filter hook output priority 0; }'
ip netns exec "$ns" nft add rule inet b out udp dport 9 drop
ctns=${ns}ct
ip netns add "$ctns"
ip -n "$ctns" link set lo up
ip netns exec "$ctns" nft add table inet b
ip netns exec "$ctns" nft 'add chain inet b out { type filter hook output priority 0; }'
ip netns exec "$ctns" nft add rule inet b out ct state new udp dport 9 drop

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
measure() { # [NS]
	for _ in 1 2 3 4 5; do ip netns exec "${1:-$ns}" "$flood" 127.0.0.1 9 "$count"; done | median
}
with() { # label, flood namespace, natbpf args...
	local label=$1 target=$2
	shift 2
	local ready
	ready=$(mktemp -u)
	"$natbpf" "$@" --ready-file "$ready" >/dev/null 2>&1 &
	pid=$!
	for _ in $(seq 300); do [ -e "$ready" ] && break; sleep 0.1; done
	local pps rss
	pps=$(measure "$target")
	rss=$(awk '/^VmHWM/ {print $2 " kB"}' "/proc/$pid/status")
	kill -INT "$pid"
	wait "$pid" || true
	pid=""
	echo "$label $pps $rss"
}
base=$(measure)
echo "baseline $base"
with drops "$ns" drops --duration 600s
with trace "$ns" trace --netns "$ns" --dport 5353 --duration 600s
echo "baseline-conntrack $(measure "$ctns")"
with clash-conntrack "$ctns" clash --netns "$ctns" --duration 600s

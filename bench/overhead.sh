#!/usr/bin/env bash
# Kernel-side cost of natbpf, as packets per second a sender in a namespace
# pushes, with natbpf and its peers running and without (median of 5 runs
# each; the baseline of each topology is measured in the same run):
#  - drop flood: UDP into an nftables drop rule, so a kfree_skb program runs
#    for every packet (the worst case for `natbpf drops`);
#  - conntrack drop flood: the same in a namespace that tracks connections,
#    so each dropped packet carries an unconfirmed entry (what `clash` checks);
#  - forwarded flood: UDP through a veth pair into a router namespace that
#    DNATs it (port 80 -> 10.78.0.9:8080) and forwards it through a second
#    veth pair to a server namespace where bench/udpsink receives it:
#    conntrack and NAT on every packet, no drop by design.
# Peers: `floor`, an empty tp_btf program on kfree_skb (bench/kfree_floor:
# the cost of being called for each drop at all, whatever a program does);
# what users run instead: `nft monitor trace` with a trace-everything rule
# (meta nftrace set 1 in prerouting and output of the namespace the packets
# cross), and a bpftrace one-liner counting skb:kfree_skb by reason.
# `drops-prometheus-scraped`: the exporter (drops --prometheus) while curl
# scrapes /metrics every second.
# natbpf's peak RSS (VmHWM) is printed beside its rows.
# Usage: [OVERHEAD_ROWS="trace clash-conntrack ..."] bench/overhead.sh [BUILD_DIR] [PACKETS]
# OVERHEAD_ROWS: measure only these rows (labels as printed) beside the
# three baselines, e.g. for an A/B of one change; default: every row.
set -euo pipefail
build=${1:-build}
count=${2:-300000}
natbpf=$build/natbpf
flood=$build/udpflood
floor=$build/kfree_floor
source "$(dirname "$0")/topology.sh"
cleanup() {
	# Every step, whatever the one before returned: under set -e a failed
	# kill or wait (a process already gone) ended the trap before the
	# namespaces were deleted, and left them on the machine.
	set +e
	[ -n "${pid:-}" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[ -n "${sink:-}" ] && kill "$sink" 2>/dev/null && wait "$sink" 2>/dev/null
	[ -n "${scraper:-}" ] && kill "$scraper" 2>/dev/null
	bench_topology_down
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bench_topology_up nbbench$$

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
measure() { # NS ADDR PORT
	for _ in 1 2 3 4 5; do ip netns exec "$1" "$flood" "$2" "$3" "$count"; done | median
}
# label, flood namespace, address, port, then the command to run beside it
# (it must create the file named by its --ready-file / last argument).
with() {
	local label=$1 target=$2 addr=$3 port=$4
	shift 4
	[ -z "${OVERHEAD_ROWS:-}" ] || [[ " $OVERHEAD_ROWS " == *" $label "* ]] || return 0
	local ready
	ready=$(mktemp -u)
	if [ "$1" = floor ]; then
		"$floor" "$build/kfree_floor.bpf.o" "$ready" >/dev/null 2>&1 &
	elif [ "$1" = nft-monitor ]; then
		# A trace-everything rule and the listener users run by hand.
		ip netns exec "$2" nft -f - <<'NFT'
table inet nbpeer {
	chain pre { type filter hook prerouting priority -300; meta nftrace set 1; }
	chain out { type filter hook output priority -300; meta nftrace set 1; }
}
NFT
		ip netns exec "$2" nft monitor trace >/dev/null 2>&1 &
		(sleep 0.5 && touch "$ready") &
	elif [ "$1" = bpftrace ]; then
		mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
		bpftrace -e 'tracepoint:skb:kfree_skb { @[args->reason] = count(); }' 2>/dev/null |
			while read -r line; do case $line in Attaching*) touch "$ready" ;; esac; done &
	elif [ "$1" = scraped ]; then
		# The exporter, scraped every second (Prometheus' default is 15-60 s).
		shift
		"$natbpf" "$@" --ready-file "$ready" >/dev/null 2>&1 &
		pid=$!
		(while sleep 1; do curl -s -o /dev/null "http://$scrape_at/metrics"; done) &
		scraper=$!
	else
		"$natbpf" "$@" --ready-file "$ready" >/dev/null 2>&1 &
	fi
	[ -n "${scraper:-}" ] || pid=$!
	for _ in $(seq 300); do [ -e "$ready" ] && break; sleep 0.1; done
	[ -e "$ready" ] || { echo "$label: did not get ready" >&2; exit 1; }
	local pps rss=""
	pps=$(measure "$target" "$addr" "$port")
	case $1 in
	floor | nft-monitor | bpftrace) ;;
	*) rss=$(awk '/^VmHWM/ {print $2 " kB"}' "/proc/$pid/status") ;;
	esac
	case $1 in
	nft-monitor)
		pkill -TERM -f "^nft monitor trace" || true # background jobs of a script ignore SIGINT
		ip netns exec "$2" nft delete table inet nbpeer
		;;
	bpftrace) pkill -INT -x bpftrace || true ;;
	esac
	[ -z "${scraper:-}" ] || { kill "$scraper" 2>/dev/null; wait "$scraper" 2>/dev/null || true; scraper=""; }
	kill -INT "$pid" 2>/dev/null || true
	wait "$pid" || true
	rm -f "$ready"
	pid=""
	echo "$label $pps $rss"
}
echo "baseline $(measure "$ns" 127.0.0.1 9)"
with floor "$ns" 127.0.0.1 9 floor
with drops "$ns" 127.0.0.1 9 drops --duration 600s
scrape_at=127.0.0.1:$((20000 + $$ % 20000))
with drops-prometheus-scraped "$ns" 127.0.0.1 9 scraped drops --prometheus "$scrape_at"
with trace "$ns" 127.0.0.1 9 trace --netns "$ns" --dport 5353 --duration 600s
with nft-monitor-trace "$ns" 127.0.0.1 9 nft-monitor "$ns"
with bpftrace-kfree_skb "$ns" 127.0.0.1 9 bpftrace
echo "baseline-conntrack $(measure "$ctns" 127.0.0.1 9)"
with clash-conntrack "$ctns" 127.0.0.1 9 clash --netns "$ctns" --duration 600s
ip netns exec "$fws" "$build/udpsink" 8080 >/dev/null &
sink=$!
echo "baseline-forward $(measure "$fwc" 10.77.0.1 80)"
with drops-forward "$fwc" 10.77.0.1 80 drops --duration 600s
with trace-forward "$fwc" 10.77.0.1 80 trace --netns "$fwr" --dport 5353 --duration 600s
with clash-forward "$fwc" 10.77.0.1 80 clash --netns "$fwr" --duration 600s
with nft-monitor-trace-forward "$fwc" 10.77.0.1 80 nft-monitor "$fwr"
with bpftrace-kfree_skb-forward "$fwc" 10.77.0.1 80 bpftrace

#!/usr/bin/env bash
# What a scrape of `natbpf drops --prometheus` costs: GET /metrics latency
# (curl's time_total) and natbpf's CPU time per scrape (utime+stime of
# /proc/PID/stat around it), median of SCRAPES scrapes 1.2 s apart (a scrape
# within a second of the last refresh is answered from it, at no cost), with
# N network namespaces that each hold an nftables drop rule with a counter
# and drop a datagram once natbpf runs (a refresh reads the rule counters of
# every namespace; each is one natbpf_drops_total series). A scrape waits
# for the event loop's next 100 ms tick, then for the report.
# The idle CPU of the same second without a scrape is subtracted.
# Usage: bench/scrape.sh BUILD_DIR [SCRAPES] [N...]; prints
# "namespaces latency_ms cpu_ms_per_scrape series body_bytes" rows.
set -euo pipefail
build=${1:?usage: bench/scrape.sh BUILD_DIR [SCRAPES] [N...]}
scrapes=${2:-9}
shift 2 || shift $#
counts=("${@:-1 25 100}")
# shellcheck disable=SC2206
counts=(${counts[*]})
natbpf=$build/natbpf
prefix=${NATBPF_BENCH_PREFIX:-nbscr}$$  # namespaces: PREFIXPID-1 ... PREFIXPID-N
port=$((20000 + $$ % 20000))
made=0
cleanup() {
	# Every step, whatever the one before returned: under set -e a failed
	# kill or wait (a process already gone) ended the trap before the
	# namespaces were deleted, and left them on the machine.
	set +e
	[ -n "${pid:-}" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	for i in $(seq 1 "$made"); do ip netns del "$prefix-$i" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cpu_ms() { awk '{print ($14 + $15) * 1000 / '"$(getconf CLK_TCK)"'}' "/proc/$1/stat"; }

grow_to() { # N: namespaces with a counted drop rule, each dropping a datagram
	while [ "$made" -lt "$1" ]; do
		made=$((made + 1))
		local n=$prefix-$made
		ip netns add "$n"
		ip -n "$n" link set lo up
		ip netns exec "$n" nft -f - <<'NFT'
table inet b {
	chain out {
		type filter hook output priority 0;
		udp dport 9 counter drop
	}
}
NFT
	done
}

for n in "${counts[@]}"; do
	grow_to "$n"
	ready=$(mktemp -u)
	"$natbpf" drops --prometheus "127.0.0.1:$port" --ready-file "$ready" >/dev/null 2>&1 &
	pid=$!
	for _ in $(seq 300); do [ -e "$ready" ] && break; sleep 0.1; done
	[ -e "$ready" ] || { echo "natbpf drops did not get ready" >&2; exit 1; }
	rm -f "$ready"
	# A drop in each namespace while natbpf counts: one series each.
	for i in $(seq 1 "$n"); do ip netns exec "$prefix-$i" bash -c 'echo x >/dev/udp/127.0.0.1/9' 2>/dev/null || true; done
	curl -s -o /dev/null "http://127.0.0.1:$port/metrics"  # the first refresh reads every namespace's base
	lat=() cpu=()
	for _ in $(seq "$scrapes"); do
		sleep 1.2
		idle0=$(cpu_ms "$pid")
		sleep 0.3
		idle1=$(cpu_ms "$pid")
		t=$(curl -s -o "/dev/shm/nbscrape.$$" -w '%{time_total}' "http://127.0.0.1:$port/metrics")
		c1=$(cpu_ms "$pid")
		lat+=("$(awk -v t="$t" 'BEGIN {printf "%.1f", t * 1000}')")
		# CPU of the scrape: what it took beyond the idle rate of the 0.3 s before.
		cpu+=("$(awk -v a="$idle0" -v b="$idle1" -v c="$c1" -v t="$t" 'BEGIN {x = (c - b) - (b - a) * t / 0.3; printf "%.1f", x < 0 ? 0 : x}')")
	done
	series=$(grep -c '^natbpf_drops_total{' "/dev/shm/nbscrape.$$" || true)
	bytes=$(wc -c <"/dev/shm/nbscrape.$$")
	rm -f "/dev/shm/nbscrape.$$"
	kill -INT "$pid"
	wait "$pid" || true
	pid=""
	echo "$n $(printf '%s\n' "${lat[@]}" | median) $(printf '%s\n' "${cpu[@]}" | median) $series $bytes"
done

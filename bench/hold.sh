#!/usr/bin/env bash
# What the hold costs the packet it holds: the round trip of a UDP datagram
# over loopback in a namespace (sendto to recv, tests/tools/udprtt.c), the
# first of a run (held while natbpf turns tracing on) and the next two,
# with `natbpf trace --proto udp` and with `--no-hold`, ROUNDS runs each.
# Prints per mode: the median first round trip and the median of the
# others, in ms.
# Usage: bench/hold.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
build=${1:-build}
rounds=${2:-7}
ns=nbhold$$
rtt=$(dirname "$0")/../tests/tools/bin/udprtt
[ -x "$rtt" ] || { echo "bench/hold.sh: $rtt is missing: build the project first" >&2; exit 1; }
ready=$(mktemp -u)
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null; rm -f "$ready"' EXIT
ip -n "$ns" link set lo up
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for mode in hold no-hold; do
	flag=""
	[ "$mode" = hold ] || flag=--no-hold
	: >"$ready.first"
	: >"$ready.rest"
	for _ in $(seq "$rounds"); do
		"$build/natbpf" trace --netns "$ns" --proto udp --duration 30 $flag --ready-file "$ready" >/dev/null 2>&1 &
		pid=$!
		for _ in $(seq 300); do [ -e "$ready" ] && break; sleep 0.1; done
		[ -e "$ready" ] && kill -0 "$pid" 2>/dev/null || { echo "bench/hold.sh: natbpf ($mode) did not get ready" >&2; exit 1; }
		rm -f "$ready"
		sleep 0.3
		read -r first rest1 rest2 < <(ip netns exec "$ns" "$rtt" 5360 3)
		echo "$first" >>"$ready.first"
		printf '%s\n%s\n' "$rest1" "$rest2" >>"$ready.rest"
		kill -INT "$pid"
		wait "$pid" || true
	done
	echo "$mode $(median <"$ready.first") $(median <"$ready.rest")"
done
rm -f "$ready.first" "$ready.rest"

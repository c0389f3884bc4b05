#!/usr/bin/env bash
# What counting a SNAT range's usage costs `natbpf clash` per report, with
# 0 and N unrelated conntrack entries in the namespace's table: the way it
# counts now (ct_range_usage: one lookup per tuple for the 2- and 1000-port
# ranges, a dump the kernel filters for the 10000-port one) beside the
# full-table dump clash read per report before. Every port of each range is
# taken by an entry of its destination inserted with conntrack -R; the unrelated ones are UDP
# flows of tests/tools udpflood. Median and max of RUNS counts (bench/ctrange).
# Usage: bench/conntrack_scale.sh BUILD_DIR [RUNS] [N...]; prints
# "entries range method used median_ms max_ms how" rows.
set -euo pipefail
build=${1:?usage: bench/conntrack_scale.sh BUILD_DIR [RUNS] [N...]}
runs=${2:-9}
shift 2 || shift $#
counts=("${@:-0 200000}")
# shellcheck disable=SC2206
counts=(${counts[*]})
here=$(cd "$(dirname "$0")" && pwd)
udpflood=$here/../tests/tools/bin/udpflood
[ -x "$udpflood" ] || udpflood=$build/udpflood
ns=nbh2ct$$
tmp=$(mktemp -d)
cleanup() {
	set +e
	ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
max=$(cat /proc/sys/net/netfilter/nf_conntrack_max)

ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" iptables -t nat -A POSTROUTING -p tcp -d 127.0.0.1 --dport 8081 -j SNAT --to-source 127.0.0.1:40000-49999
ip netns exec "$ns" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=600
# The ranges' own entries: ports 40000-49999.
for i in $(seq 0 9999); do
	echo "-I -p tcp -s 127.0.0.1 -d 127.0.0.1 --sport $((10000 + i)) --dport 8081 -r 127.0.0.1 -q 127.0.0.1 --reply-port-src 8081 --reply-port-dst $((40000 + i)) --state ESTABLISHED -u SEEN_REPLY,ASSURED -t 600"
done >"$tmp/taken.ct"
ip netns exec "$ns" conntrack -R "$tmp/taken.ct" >/dev/null 2>&1
filled=0 i=2
echo "entries range method used median_ms max_ms how"
for n in "${counts[@]}"; do
	[ "$n" -lt "$max" ] || { echo "N=$n does not fit nf_conntrack_max=$max" >&2; exit 1; }
	while [ "$filled" -lt "$n" ]; do
		k=$((n - filled < 50000 ? n - filled : 50000))
		ip netns exec "$ns" "$udpflood" "127.0.2.$i" 1024 "$k" "$k" >/dev/null
		filled=$((filled + k)) i=$((i + 1))
	done
	entries=$(ip netns exec "$ns" cat /proc/sys/net/netfilter/nf_conntrack_count)
	for range in 40001 40999 49999; do
		ip netns exec "$ns" "$build/ct_range" 127.0.0.1 8081 127.0.0.1 127.0.0.1 40000 "$range" "$runs" |
			sed -E 's/^([a-z_]+) used=([0-9]+) how="([^"]*)" median_ms=([0-9.]+) max_ms=([0-9.]+)$/\1 \2 \4 \5 \3/' |
			while read -r method used med mx how; do
				echo "$entries $((range - 40000 + 1))_ports $method $used $med $mx $how"
			done
	done
done

#!/usr/bin/env bash
# Traced packets at the rate limit: a 3 s UDP flood to the traced port,
# with natbpf trace marking at most 50 packets a second of it. Every marked
# packet is told as a story that ends in the drop rule, the count stays
# within the limit, and neither the nftables trace socket (ENOBUFS) nor the
# ring buffer lost anything, so no story was lost. (`nft monitor trace`
# beside it is no ground truth: it saw fewer packets than natbpf told.)
#  - nft: dropped by an output rule;
#  - iptables-legacy: sent to 127.0.0.1 and dropped by an INPUT rule, so a
#    packet passes twice (output, then prerouting on lo), each pass a story
#    of its own: sent through lo, then dropped. A packet marked on output
#    stays traced on its second pass; the prerouting marking rule (a limit
#    of its own) also marks second passes of packets output did not. Each
#    pass's first TRACE line is our raw rule's. It had a limiter of its own
#    too, which the flood's unmarked packets drained: passes without a first
#    line went on in another pass's story, and packets the marking rules had
#    not traced were traced from raw on.
source "$(dirname "$0")/lib.sh"
flood=$(scen_tool udpflood) || exit 1

# Floods until 3 s passed; prints the seconds taken.
flood_3s() { # NS
	local start
	start=$(date +%s)
	while [ "$(date +%s)" -lt $((start + 3)) ]; do ip netns exec "$1" "$flood" 127.0.0.1 9 50000 >/dev/null; done
	echo $(($(date +%s) - start))
}

# Software emulation (the VM) is two orders of magnitude slower than this host.
least_sent=100000 least_told=100
[ "${NATBPF_VM:-}" = 1 ] && least_sent=2000 least_told=50

run_case() { # BACKEND
	local backend=$1 ns sent secs stories drops
	ns=$(scen_netns "rate$backend") || fail "cannot create a namespace"
	if [ "$backend" = nft ]; then
		ip netns exec "$ns" nft -f - <<'NFT' || fail "cannot load the ruleset"
table inet filter {
	chain output {
		type filter hook output priority filter; policy accept;
		udp dport 9 counter drop
	}
}
NFT
	else
		ip netns exec "$ns" ip link set lo up
		ip netns exec "$ns" iptables-legacy -A INPUT -p udp --dport 9 -j DROP || fail "cannot add the legacy rule"
	fi
	local out=$SCEN_TMP/$backend.jsonl ready=$SCEN_TMP/$backend.ready err=$SCEN_TMP/$backend.err
	scen_bg $NATBPF trace --netns "$ns" --dport 9 --rate 50/second --json --duration 60 --ready-file "$ready" >"$out" 2>"$err"
	local tracer=$!
	scen_wait_file "$ready" 300 || { cat "$err"; fail "$backend: natbpf did not get ready"; }
	secs=$(flood_3s "$ns")
	sleep 1.5
	kill -INT $tracer
	wait $tracer || { cat "$err"; fail "$backend: natbpf trace exited $?"; }
	if [ "$backend" = nft ]; then
		sent=$(ip netns exec "$ns" nft list chain inet filter output | grep -o 'counter packets [0-9]*' | awk '{print $3}')
	else
		sent=$(ip netns exec "$ns" iptables-legacy -nvxL INPUT | awk '$3 == "DROP" {print $1}')
	fi
	stories=$(jq -s '[.[] | select(.type == "packet")] | length' "$out")
	drops=$(jq -s '[.[] | select(.type == "packet" and .verdict == "drop")] | length' "$out")
	echo "$backend flood: $sent packets in ${secs}s; $stories stories, $drops drops"
	[ "$sent" -ge "$least_sent" ] || fail "$backend: only $sent packets: not a flood"
	# 50 a second per marking rule, and the limit's burst (5) on top
	local most=$((50 * (secs + 1) + 5))
	[ "$stories" -ge "$least_told" ] || fail "$backend: $stories stories told in ${secs}s at 50/second"
	jq -s -e --argjson n "$stories" '[.[] | select(.type == "summary")][-1] |
		.packets == $n and .lost.nftrace == 0 and .lost.bpf == 0' "$out" >/dev/null ||
		{ jq -c 'select(.type == "summary")' "$out" >&2; fail "$backend: the summary counts lost events or other packets"; }
	if [ "$backend" = nft ]; then
		[ "$stories" -le "$most" ] || fail "nft: $stories stories in ${secs}s at 50/second"
		[ "$stories" = "$drops" ] || fail "nft: a story of the flood does not end in the drop rule"
		return
	fi
	# Each story one pass, with its own lines: the first sent through lo
	# (filter OUTPUT's policy), the second dropped by filter INPUT's rule.
	local bad sends
	bad=$(jq -c 'select(.type == "packet") | [.verdict, .fate, .oif, .drop.chain, ([.steps[] | select(.evidence == "nflog") | .chain] | unique)] |
		select(. != ["drop", "dropped", null, "INPUT", ["INPUT"]] and . != ["accept", "sent", "lo", null, ["OUTPUT"]])' \
		"$out" | sort | uniq -c)
	[ -z "$bad" ] || { echo "$bad" >&2; fail "iptables-legacy: stories that are not one pass of a marked packet"; }
	sends=$((stories - drops))
	[ "$sends" -ge "$least_told" ] && [ "$sends" -le "$most" ] || fail "iptables-legacy: $sends sends told in ${secs}s at 50/second"
	# Every send marked on output is dropped on its second pass, still traced.
	[ "$drops" -ge "$sends" ] && [ "$drops" -le $((sends + most)) ] ||
		fail "iptables-legacy: $sends sends and $drops drops: each send's second pass is a drop story"
}

run_case nft
if command -v iptables-legacy >/dev/null; then
	run_case legacy
else
	fail "iptables-legacy is not installed (scripts/setup.sh installs it)"
fi
echo "PASS trace at the rate limit (nft; iptables-legacy, two passes per packet)"

#!/usr/bin/env bash
# Seed 003's service that works: port 80, DNATed to the host's socat on
# 52000 ("demo/site:http"), traced with `natbpf trace --dport 80`, with
# iptables-legacy, iptables-nft and nftables. Every packet the client sends
# is told once, delivered, with its steps: an accepted packet's nftables
# messages (our fate chain's, at the last hook) are often read before its
# iptables-legacy TRACE lines, which come through another socket, and each
# packet was told twice (its fate without steps, then its lines without a
# fate, "unknown").
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed003.sh"

run_case() { # BACKEND
	local ipt=$1 p
	case $ipt in nft) p=nb$$af ;; iptables-nft) p=nb$$an ;; *) p=nb$$al ;; esac
	SCEN_NS+=("$p-client" "$p-node")
	seed003_up "$p" "$ipt" 2>"$SCEN_TMP/up.err" || fail "seed003_up $ipt failed: $(cat "$SCEN_TMP/up.err")"
	# What the client sends to port 80, counted where it leaves.
	ip netns exec "$p-client" nft -f - <<'NFT' || fail "nft failed"
table ip natbpf_test_count {
	chain out {
		type filter hook output priority 0; policy accept;
		tcp dport 80 counter
	}
}
NFT
	scen_bg seed003_listen "$p" 30
	scen_wait_listen "$p-node" 52000
	local out=$SCEN_TMP/$ipt.jsonl ready=$SCEN_TMP/$ipt.ready
	scen_bg $NATBPF trace --netns "$p-node" --dport 80 --rate 1000/second --json --duration 60 --ready-file "$ready" \
		>"$out" 2>"$SCEN_TMP/$ipt.err"
	local pid=$! i sent
	scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/$ipt.err"; fail "$ipt: natbpf trace did not get ready"; }
	for i in 1 2 3; do
		seed003_connect "$p" 80 || fail "$ipt: port 80 (demo/site:http) should reach the host's socat"
		sleep 0.3
	done
	sleep 1
	kill -INT "$pid"
	wait "$pid" || { cat "$SCEN_TMP/$ipt.err"; fail "$ipt: natbpf trace exited $?"; }
	sent=$(ip netns exec "$p-client" nft -j list table ip natbpf_test_count |
		jq '[.nftables[] | .rule? // empty | .expr[] | .counter? // empty | .packets] | add')
	local all=$SCEN_TMP/$ipt.stories
	jq -s '[.[] | select(.type == "packet")]' "$out" >"$all"
	echo "$ipt: the client sent $sent packets to port 80; natbpf told $(jq length "$all") stories:"
	jq -r '.[] | "  packet \(.number) sport \(.packet.sport) \(.packet.tcp_flags) \(.verdict) \(.fate) steps \(.steps | length)"
		+ " evidence \([.steps[].evidence] | unique | join(","))"' "$all"
	[ "${sent:-0}" -ge 9 ] || fail "$ipt: 3 connections sent $sent packets: the incident itself is broken"
	jq_true "$all" "length == $sent" "$ipt: each of the $sent packets sent must be told exactly once"
	jq_true "$all" 'all(.verdict == "accept" and .fate == "delivered" and (.steps | length) > 0)' \
		"$ipt: every story should be a delivered packet with its steps"
	local evidence=nftrace
	[ "$ipt" = iptables-legacy ] && evidence=nflog
	jq_true "$all" 'all([.steps[].evidence] | unique == ["'"$evidence"'"])' "$ipt: the steps should come from $evidence"
	# The first SYN of each connection (a slow machine may retransmit one
	# while the first is held: conntrack then NATs it without the rule).
	jq_true "$all" '[.[] | select(.packet.tcp_flags == "S")] | group_by(.packet.sport) | length == 3 and all(.[0].nat[0]
		| .kind == "dnat" and .to == "10.30.0.2:52000" and (.rule | contains("demo/site:http")))' \
		"$ipt: each connection's first SYN should be told DNATed to 10.30.0.2:52000 by the demo/site:http rule"
	echo "ok $ipt"
}

for backend in iptables-legacy iptables-nft nft; do run_case "$backend"; done
echo "PASS trace accepted"

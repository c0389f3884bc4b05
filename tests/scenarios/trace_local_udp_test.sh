#!/usr/bin/env bash
# Locally generated traffic (output hook) and UDP, IPv4 and IPv6: a UDP
# datagram to port 5353 dropped by an output-chain rule, and one to port
# 5354 that is accepted and leaves through the loopback interface.
source "$(dirname "$0")/lib.sh"

ns=$(scen_netns local) || fail "cannot create a namespace"
ip netns exec "$ns" nft -f - <<'NFT' || fail "cannot load the ruleset"
table inet filter {
	chain output {
		type filter hook output priority filter; policy accept;
		udp dport 5353 counter drop
	}
}
NFT

out=$SCEN_TMP/trace.jsonl
ready=$SCEN_TMP/ready
scen_bg $NATBPF trace --netns "$ns" --proto udp --json --duration 60 --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
tracer=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf did not get ready"; }
send() { echo hello | ip netns exec "$ns" socat -u - "UDP-SENDTO:$1" 2>/dev/null; }
send 127.0.0.1:5353
send '[::1]:5353'
send 127.0.0.1:5354
sleep 1.5
kill -INT $tracer
wait $tracer || fail "natbpf trace exited $?"

pkt() { jq -s "[.[] | select(.type == \"packet\" and $1)][0]" "$out" >"$SCEN_TMP/p.json"; }
pkt '.packet.daddr == "127.0.0.1" and .packet.dport == 5353'
jq_true "$SCEN_TMP/p.json" '.packet.proto == "udp" and .verdict == "drop"'
jq_true "$SCEN_TMP/p.json" '.drop.table == "filter" and .drop.chain == "output" and .drop.hook == "output" and .drop.rule == "udp dport 5353 counter drop"'
pkt '.packet.daddr == "::1" and .packet.dport == 5353'
jq_true "$SCEN_TMP/p.json" '.packet.proto == "udp" and .verdict == "drop" and .drop.chain == "output"'
jq_true "$SCEN_TMP/p.json" '[.steps[0].family] == ["inet"]'
pkt '.packet.daddr == "127.0.0.1" and .packet.dport == 5354 and .fate == "sent"'
jq_true "$SCEN_TMP/p.json" '.verdict == "accept" and .oif == "lo"'
echo "PASS trace local udp"

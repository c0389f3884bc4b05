#!/usr/bin/env bash
# Locally generated traffic (output hook), UDP (IPv4 and IPv6) and ICMP: a
# UDP datagram to port 5353 dropped by an output-chain rule, one to port 5354
# that is accepted and leaves through the loopback interface, and an ICMP
# echo request dropped by an ICMP rule.
source "$(dirname "$0")/lib.sh"

ns=$(scen_netns local) || fail "cannot create a namespace"
ip netns exec "$ns" nft -f - <<'NFT' || fail "cannot load the ruleset"
table inet filter {
	chain output {
		type filter hook output priority filter; policy accept;
		udp dport 5353 counter drop
		meta l4proto icmp counter drop
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

# The first story matching $1; when none does, every story is shown.
pkt() {
	jq -s "[.[] | select(.type == \"packet\" and $1)][0]" "$out" >"$SCEN_TMP/p.json"
	if [ "$(cat "$SCEN_TMP/p.json")" = null ]; then
		jq -c 'select(.type == "packet") | {number, trace_id, packet, verdict, fate, oif, steps: [.steps[] | .chain + ":" + .verdict]}' "$out" >&2
		jq -c 'select(.type == "summary")' "$out" >&2
		fail "no story where $1"
	fi
}
pkt '.packet.daddr == "127.0.0.1" and .packet.dport == 5353'
jq_true "$SCEN_TMP/p.json" '.packet.proto == "udp" and .verdict == "drop"'
jq_true "$SCEN_TMP/p.json" '.drop.table == "filter" and .drop.chain == "output" and .drop.hook == "output" and .drop.rule == "udp dport 5353 counter drop"'
pkt '.packet.daddr == "::1" and .packet.dport == 5353'
jq_true "$SCEN_TMP/p.json" '.packet.proto == "udp" and .verdict == "drop" and .drop.chain == "output"'
jq_true "$SCEN_TMP/p.json" '[.steps[0].family] == ["inet"]'
pkt '.packet.daddr == "127.0.0.1" and .packet.dport == 5354 and .fate == "sent"'
jq_true "$SCEN_TMP/p.json" '.verdict == "accept" and .oif == "lo"'

# ICMP: an echo request (type 8) sent as a raw IPv4 packet.
out=$SCEN_TMP/icmp.jsonl
ready=$SCEN_TMP/ready-icmp
scen_bg $NATBPF trace --netns "$ns" --proto icmp --json --count 1 --duration 60 --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
tracer=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf did not get ready (icmp)"; }
printf '\x08\x00\xf7\xfe\x00\x01\x00\x00' | ip netns exec "$ns" socat -u - IP4-SENDTO:127.0.0.1:1 2>/dev/null
wait $tracer || fail "natbpf trace --proto icmp exited $?"
pkt '.packet.proto == "icmp"'
jq_true "$SCEN_TMP/p.json" '.packet.daddr == "127.0.0.1" and .verdict == "drop" and .drop.rule == "meta l4proto icmp counter drop"'
echo "PASS trace local udp icmp"

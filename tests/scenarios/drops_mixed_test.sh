#!/usr/bin/env bash
# Three incidents at once in one namespace, each under its own cause with
# the count of what was sent: an nftables rule drop (5 datagrams to udp
# 9999), a SNAT insert failure (seed 004: the second connection's SYNs,
# every SYN it sent) and UDP to a closed port (4 datagrams to
# 5555, outside netfilter: NO_SOCKET). Recorded and explained offline.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed004.sh"
command -v socat >/dev/null || skip "socat is not installed"

ns=$(scen_netns mixed) || fail "cannot create a namespace"
seed004_up "$ns" nft 2>"$SCEN_TMP/up.err" || fail "seed004_up failed: $(cat "$SCEN_TMP/up.err")"
ip netns exec "$ns" nft -f - <<'NFT' || fail "cannot load the drop rule"
table inet filter {
	chain output {
		type filter hook output priority filter; policy accept;
		udp dport 9999 counter drop
	}
}
NFT
scen_bg seed004_server "$ns" 8080 40
scen_wait_listen "$ns" 8080

out=$SCEN_TMP/mixed.jsonl ready=$SCEN_TMP/ready
scen_bg $NATBPF drops --netns "$ns" --duration 12s --json --record "$out.rec" --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
pid=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf drops did not get ready"; }
scen_bg seed004_client "$ns" 8080 30 # the first connection: takes the only SNAT tuple
first=""
for _ in $(seq 100); do
	first=$(ip netns exec "$ns" conntrack -L -p tcp --dport 8080 2>/dev/null | grep ESTABLISHED)
	[ -n "$first" ] && break
	sleep 0.1
done
[ -n "$first" ] || fail "the first connection did not get a conntrack entry"
# The second connection: its SYNs are dropped at confirm. What it sent is
# its first SYN and the retransmissions TCP counted.
syn_retrans() { # TcpExt TCPSynRetrans of the namespace, from /proc/net/netstat
	ip netns exec "$ns" awk '$1 == "TcpExt:" { if (!h) { for (i = 2; i <= NF; i++) if ($i == "TCPSynRetrans") c = i; h = 1 } else print $c }' /proc/net/netstat
}
retrans_before=$(syn_retrans)
seed004_client "$ns" 8080 4
after=$(syn_retrans)
[ -n "$after" ] && [ -n "$retrans_before" ] || fail "cannot read TCPSynRetrans from /proc/net/netstat"
syns=$((after - retrans_before + 1))
for _ in 1 2 3 4 5; do echo x | ip netns exec "$ns" socat -u - UDP-SENDTO:127.0.0.1:9999 2>/dev/null; done
for _ in 1 2 3 4; do echo x | ip netns exec "$ns" socat -u - UDP-SENDTO:127.0.0.1:5555 2>/dev/null; done
wait "$pid" || { cat "$SCEN_TMP/err"; fail "natbpf drops exited $?"; }
explain_same "$out.rec" "$out" --json

jq -s . "$out" >"$out.all" || fail "output is not JSON lines"
jq_true "$out.all" '[.[] | select(.type == "drop_cause" and .cause == "nftables rule or chain policy drop")] | length == 1 and .[0].count == 5 and .[0].layer == "netfilter"' \
	"the nftables rule drop: exactly the 5 datagrams sent"
jq_true "$out.all" '[.[] | select(.type == "drop_cause" and .cause == "nftables rule or chain policy drop")][0].rules[0].rule | test("udp dport 9999 counter drop")'
failed=$(jq -r "[.[] | select(.type == \"summary\")][0].conntrack[\"$ns\"].insert_failed" "$out.all")
[ "$failed" -ge 1 ] 2>/dev/null || fail "insert_failed did not rise (got '$failed'): the SNAT clash did not happen"
jq_true "$out.all" "[.[] | select(.type == \"drop_cause\" and (.cause | test(\"^conntrack insert failed\")))] | length == 1 and .[0].count == $syns and .[0].flows == {\"tcp -> 127.0.0.1:8080\": $syns}" \
	"the SNAT insert failures: every SYN the second connection sent ($syns; insert_failed +$failed)"
jq_true "$out.all" '[.[] | select(.type == "drop_cause" and (.cause | test("^conntrack insert failed")))][0].rules == []' \
	"the udp 9999 drop rule is not the reason the SYNs to 8080 failed"
jq_true "$out.all" '[.[] | select(.type == "drop_cause" and .layer == "outside netfilter" and (.cause | test("^NO_SOCKET")))] | length == 1 and .[0].count == 4 and .[0].flows == {"udp -> 127.0.0.1:5555": 4}' \
	"the closed port: 4 datagrams, not the firewall"
jq_true "$out.all" '[.[] | select(.type == "drop_cause" and .layer == "outside netfilter" and (.cause | test("^NO_SOCKET")))][0].fix | test("5555")'
jq_true "$out.all" '[.[] | select(.type == "summary")][0] | .counted and .lost.examples == 0 and .unkeyed == 0'

setpriv --reuid=65534 --regid=65534 --clear-groups $NATBPF explain "$out.rec" >"$out.txt" 2>/dev/null || fail "explain (text) failed"
assert_contains "$out.txt" '^not the firewall \(dropped outside netfilter\): '
assert_contains "$out.txt" 'NO_SOCKET: nothing listens'
assert_contains "$out.txt" 'conntrack insert failed at confirm'
assert_contains "$out.txt" 'lost: 0 example packets'
echo "PASS drops mixed"

#!/usr/bin/env bash
# Drop attribution across namespaces: an nftables rule drop in one namespace
# (the rule named through its counter) and an iptables-legacy DROP in
# another, ranked by count.
source "$(dirname "$0")/lib.sh"

a=$(scen_netns dropa) || fail "cannot create a namespace"
b=$(scen_netns dropb) || fail "cannot create a namespace"
ip netns exec "$a" nft -f - <<'NFT' || fail "cannot load the ruleset"
table inet filter {
	chain output {
		type filter hook output priority filter; policy accept;
		udp dport 9999 counter drop
	}
}
NFT
command -v iptables-legacy >/dev/null || fail "iptables-legacy is not installed (scripts/setup.sh installs it)"
ip netns exec "$b" iptables-legacy -A OUTPUT -p udp --dport 7777 -j DROP || fail "cannot add the legacy rule"

out=$SCEN_TMP/drops.jsonl
ready=$SCEN_TMP/ready
scen_bg $NATBPF drops --duration 8s --json --record "$out.rec" --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
tracer=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf did not get ready"; }
for i in 1 2 3 4 5 6; do echo x | ip netns exec "$a" socat -u - UDP-SENDTO:127.0.0.1:9999 2>/dev/null; done
for i in 1 2 3; do echo x | ip netns exec "$b" socat -u - UDP-SENDTO:127.0.0.1:7777 2>/dev/null; done
wait $tracer || { cat "$SCEN_TMP/err"; fail "natbpf drops exited $?"; }
explain_same "$out.rec" "$out" --json

jq -s "[.[] | select(.type == \"drop_cause\" and .netns == \"$a\")][0]" "$out" >"$SCEN_TMP/a.json"
jq_true "$SCEN_TMP/a.json" '.count >= 6 and .cause == "nftables rule or chain policy drop"'
jq_true "$SCEN_TMP/a.json" '.rules[0].rule == "inet filter output: rule \"udp dport 9999 counter drop\" (handle 2)" and .rules[0].count == 6'
jq_true "$SCEN_TMP/a.json" '.flows["udp -> 127.0.0.1:9999"] >= 6'
jq -s "[.[] | select(.type == \"drop_cause\" and .netns == \"$b\")][0]" "$out" >"$SCEN_TMP/b.json"
jq_true "$SCEN_TMP/b.json" '.count >= 3 and (.cause | test("iptables-legacy"))'
jq_true "$SCEN_TMP/b.json" '.flows["udp -> 127.0.0.1:7777"] >= 3'
# Ranked: the namespace with more drops comes first among these two.
jq -s -e "[.[] | select(.type == \"drop_cause\" and (.netns == \"$a\" or .netns == \"$b\"))] | .[0].netns == \"$a\"" "$out" >/dev/null ||
	fail "causes are not ranked by count"
jq_true "$out" 'select(.type == "summary") | .drops >= 9 and .lost.bpf == 0'

# --netns: the report of one namespace only, with its name; recorded too.
out=$SCEN_TMP/drops-a.jsonl
rm -f "$ready"
scen_bg $NATBPF drops --netns "$a" --duration 5s --json --record "$out.rec" --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
tracer=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf drops --netns did not get ready"; }
for i in 1 2 3 4; do echo x | ip netns exec "$a" socat -u - UDP-SENDTO:127.0.0.1:9999 2>/dev/null; done
for i in 1 2; do echo x | ip netns exec "$b" socat -u - UDP-SENDTO:127.0.0.1:7777 2>/dev/null; done
wait $tracer || { cat "$SCEN_TMP/err"; fail "natbpf drops --netns exited $?"; }
explain_same "$out.rec" "$out" --json
jq -s . "$out" >"$out.all"
jq_true "$out.all" "[.[] | select(.type == \"drop_cause\")] | length == 1 and .[0].netns == \"$a\" and .[0].count == 4" \
	"--netns $a must report its 4 drops and nothing of $b"
jq_true "$out.all" "[.[] | select(.type == \"summary\")][0].conntrack | keys == [\"$a\"]"
expect_error 2 "unknown network namespace" $NATBPF drops --netns "nb$$-gone" --duration 1s
expect_error 2 "--interval must be at least 100ms" $NATBPF drops --interval 10ms --duration 1s

# --interval: a report every second, each with the drops since the one
# before; together they count every drop once. Replayed the same.
out=$SCEN_TMP/drops-interval.jsonl
rm -f "$ready"
scen_bg $NATBPF drops --netns "$a" --interval 1s --duration 4s --json --record "$out.rec" --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
tracer=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf drops --interval did not get ready"; }
for i in 1 2 3; do echo x | ip netns exec "$a" socat -u - UDP-SENDTO:127.0.0.1:9999 2>/dev/null; done
sleep 1.5
for i in 1 2; do echo x | ip netns exec "$a" socat -u - UDP-SENDTO:127.0.0.1:9999 2>/dev/null; done
wait $tracer || { cat "$SCEN_TMP/err"; fail "natbpf drops --interval exited $?"; }
explain_same "$out.rec" "$out" --json
jq -s . "$out" >"$out.all"
jq_true "$out.all" '[.[] | select(.type == "summary")] | length >= 4' "a summary every second and one at the end"
jq_true "$out.all" '[.[] | select(.type == "drop_cause" and (.cause | test("nftables")))] | (map(.count) | add) == 5 and length >= 2' \
	"the 5 drops, told in the reports of the seconds they happened, each once"
echo "PASS drops"

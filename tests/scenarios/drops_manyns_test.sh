#!/usr/bin/env bash
# One drop among 500 namespaces (40 under emulation), every tenth of which
# holds the same counted drop rule: `natbpf drops` across all of them names
# the namespace the drop happened in and its rule (only that counter rose).
# The ready time is printed; bench/scrape.sh measures the cost.
source "$(dirname "$0")/lib.sh"
n=500
[ "${NATBPF_VM:-0}" = 1 ] && n=40
target=$((n * 3 / 4 + 1))
prefix=nbh2$$-m
for i in $(seq 1 "$n"); do echo "$prefix$i"; done >>"$SCEN_TMP/netns" # removed on exit, whatever happens
for i in $(seq 1 "$n"); do echo "netns add $prefix$i"; done | ip -batch - || fail "cannot create $n namespaces"
rule() { # NS: the counted drop rule
	ip netns exec "$1" nft -f - <<'NFT'
table inet filter {
	chain output {
		type filter hook output priority filter; policy accept;
		udp dport 9999 counter drop
	}
}
NFT
}
for i in $(seq 1 10 "$n") "$target"; do rule "$prefix$i" || fail "cannot load the ruleset in $prefix$i"; done
ns=$prefix$target
ip -n "$ns" link set lo up

out=$SCEN_TMP/drops.jsonl ready=$SCEN_TMP/ready
start=$(date +%s%N)
scen_bg $NATBPF drops --duration 10s --json --record "$out.rec" --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
tracer=$!
scen_wait_file "$ready" 600 || { cat "$SCEN_TMP/err"; fail "natbpf did not get ready"; }
ready_ms=$((($(date +%s%N) - start) / 1000000))
echo "ready after ${ready_ms} ms with $n namespaces"
for i in 1 2 3 4 5; do echo x | ip netns exec "$ns" socat -u - UDP-SENDTO:127.0.0.1:9999 2>/dev/null; done
wait $tracer || { cat "$SCEN_TMP/err"; fail "natbpf drops exited $?"; }
explain_same "$out.rec" "$out" --json
jq -s . "$out" >"$out.all" || fail "output is not JSON lines"
jq_true "$out.all" "[.[] | select(.type == \"drop_cause\" and .netns != null and (.netns | startswith(\"$prefix\")))] | length == 1" \
	"exactly one of the $n namespaces dropped"
jq -s "[.[] | select(.type == \"drop_cause\" and .netns == \"$ns\")][0]" "$out" >"$SCEN_TMP/c.json"
jq_true "$SCEN_TMP/c.json" '.count >= 5 and .cause == "nftables rule or chain policy drop"'
jq_true "$SCEN_TMP/c.json" '.rules[0].rule == "inet filter output: rule \"udp dport 9999 counter drop\" (handle 2)" and .rules[0].count == 5'
echo "PASS drops among $n namespaces"

#!/usr/bin/env bash
# A drop flood from the C sender: 400000 UDP datagrams over 200 ports into an
# nftables drop rule, as fast as one core sends them. Every drop is counted
# in the kernel: the cause's count equals what was sent (none is received)
# and the rule's counter; each port is a flow; at most one example per key
# and second crossed the ring buffer; the lost-example counter is shown in
# JSON and text; natbpf's memory stays bounded. The same run is explained
# offline to the same output.
source "$(dirname "$0")/lib.sh"
flood=$(scen_tool udpflood) || exit 1
sent=400000 ports=200

ns=$(scen_netns flood) || fail "cannot create a namespace"
ip netns exec "$ns" nft -f - <<'NFT' || fail "cannot load the drop rule"
table inet filter {
	chain output {
		type filter hook output priority filter; policy accept;
		udp dport 20000-20199 counter drop
	}
}
NFT
out=$SCEN_TMP/flood.jsonl ready=$SCEN_TMP/ready
scen_bg $NATBPF drops --netns "$ns" --duration 600s --json --record "$out.rec" --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
pid=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf drops did not get ready"; }
ip netns exec "$ns" "$flood" 127.0.0.1 20000 "$sent" "$ports" >"$SCEN_TMP/pps" || fail "udpflood failed"
rss_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
kill -INT "$pid"
wait "$pid" || { cat "$SCEN_TMP/err"; fail "natbpf drops exited $?"; }
echo "sent $sent at $(cat "$SCEN_TMP/pps") packets/s; natbpf peak RSS ${rss_kb} kB"
explain_same "$out.rec" "$out" --json

jq -s . "$out" >"$out.all" || fail "output is not JSON lines"
jq_true "$out.all" "[.[] | select(.type == \"drop_cause\" and .layer == \"netfilter\")] | length == 1 and .[0].count == $sent" \
	"the kernel counted every one of the $sent datagrams"
jq_true "$out.all" "[.[] | select(.type == \"drop_cause\" and .layer == \"netfilter\")][0] | (.flows | length) == $ports and (.rules[0].count == $sent)" \
	"each of the $ports ports is a flow, and the rule's counter agrees"
jq_true "$out.all" '[.[] | select(.type == "summary")][0] | .counted and (.lost | has("examples")) and .unkeyed == 0'
# One example per key, CPU and second: the recording holds far fewer records than drops.
examples=$(grep -c '"t":"bpf"' "$out.rec")
[ "$examples" -lt $((sent / 20)) ] || fail "$examples BPF records for $sent drops: examples are not rate limited"
[ "$rss_kb" -lt 100000 ] || fail "natbpf used ${rss_kb} kB during the flood"
setpriv --reuid=65534 --regid=65534 --clear-groups $NATBPF explain "$out.rec" >"$out.txt" 2>/dev/null || fail "explain (text) failed"
assert_contains "$out.txt" "^netfilter: $sent drops, 1 cause"
assert_contains "$out.txt" 'lost: [0-9]+ example packets'
echo "PASS drops flood"

#!/usr/bin/env bash
# natbpf drops --prometheus --clash --netns NS: a 2-port SNAT range exhausted
# by three connections (as clash_range); the third connection's SYNs die at
# conntrack confirm. The metrics, served in natbpf's own namespace while it
# counts in NS, say so three ways that must agree: natbpf_clashes_total
# {outcome="dropped",cause="range_exhausted"}, natbpf_conntrack_insert_failed_total
# and the conntrack cause of natbpf_drops_total. The recording is explained
# offline to the same output.
source "$(dirname "$0")/lib.sh"
command -v socat >/dev/null || skip "socat is not installed"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/prom_lib.sh"

expect_error 2 '--clash counts conntrack clashes for the metrics: use it with --prometheus' $NATBPF drops --clash

ns=$(scen_netns rng) || fail "cannot create a namespace"
ip netns exec "$ns" iptables -t nat -A POSTROUTING -p tcp -d 127.0.0.1 --dport 8080 -j SNAT --to-source 127.0.0.1:40000-40001 ||
	fail "iptables failed"
port=$((20000 + $$ % 20000))
out=$SCEN_TMP/drops.txt ready=$SCEN_TMP/ready
scen_bg ip netns exec "$ns" timeout 60 socat TCP-LISTEN:8080,reuseaddr,fork SYSTEM:"sleep 20"
scen_bg $NATBPF drops --netns "$ns" --prometheus 127.0.0.1:$port --clash --record "$out.rec" --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
pid=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf drops did not get ready"; }
established() { ip netns exec "$ns" conntrack -L -f ipv4 -p tcp --dport 8080 2>/dev/null | grep -c ESTABLISHED; }
for i in 1 2; do
	scen_bg ip netns exec "$ns" timeout 12 socat -u SYSTEM:"sleep 12" TCP:127.0.0.1:8080
	tries=0
	while [ "$(established)" -lt $i ] && [ $tries -lt 200 ]; do sleep 0.1; tries=$((tries + 1)); done
done
[ "$(established)" = 2 ] || fail "the first two connections should be established"
ip netns exec "$ns" timeout 4 socat -u SYSTEM:"sleep 4" TCP:127.0.0.1:8080 && fail "the third connection should fail"
sleep 1.2
prom_scrape "$port" "$SCEN_TMP/m"
clashes=$(prom_value "$SCEN_TMP/m" natbpf_clashes_total netns="^$ns\$" outcome='^dropped$' cause='^range_exhausted$') ||
	fail "cannot read natbpf_clashes_total"
insert_failed=$(prom_value "$SCEN_TMP/m" natbpf_conntrack_insert_failed_total netns="^$ns\$") || fail "cannot read insert_failed"
ct_drops=$(prom_value "$SCEN_TMP/m" natbpf_drops_total netns="^$ns\$" cause='conntrack') || fail "cannot read the drops"
others=$(prom_value "$SCEN_TMP/m" natbpf_clashes_total netns="^$ns\$" cause='^(nat_port_race|same_tuple_race|stale_entry|table_full|chain_too_long|unknown)$') ||
	fail "cannot read natbpf_clashes_total"
[ "$clashes" -ge 1 ] || { cat "$SCEN_TMP/m"; fail "no range_exhausted clash counted"; }
[ "$others" -eq 0 ] || { cat "$SCEN_TMP/m"; fail "clashes of other causes counted"; }
[ "$insert_failed" -eq "$clashes" ] || { cat "$SCEN_TMP/m"; fail "insert_failed +$insert_failed, clashes $clashes"; }
[ "$ct_drops" -eq "$clashes" ] || { cat "$SCEN_TMP/m"; fail "conntrack drops $ct_drops, clashes $clashes"; }
echo "ok $clashes SYNs: range_exhausted = insert_failed = conntrack drops"
kill -INT "$pid"
wait "$pid" || { cat "$SCEN_TMP/err"; fail "natbpf drops exited $?"; }
explain_same "$out.rec" "$out"
echo "PASS drops prometheus clash"

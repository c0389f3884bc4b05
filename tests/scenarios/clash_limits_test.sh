#!/usr/bin/env bash
# The two table limits behind insert failures that are not clashes:
#  - table full: nf_conntrack_max reached by established (assured, so never
#    early-dropped) connections; the next SYN is dropped in nf_conntrack_in
#    before it gets an entry (drop rises, insert_failed does not);
#  - chain too long: with the fewest hash buckets (512), thousands of UDP
#    flows make chains longer than confirm accepts (chaintoolong rises).
# Both need the global sysctls nf_conntrack_max and nf_conntrack_buckets, so
# the test runs only inside the VM harness (the host's own table is not ours
# to shrink); the values are restored before the next test.
source "$(dirname "$0")/lib.sh"
[ "${NATBPF_VM:-}" = 1 ] || skip "changes the global nf_conntrack_max and nf_conntrack_buckets: runs in the VM harness only (tests/vm/run.sh)"
command -v socat >/dev/null || skip "socat is not installed"
udpclash=$(scen_tool udpclash) || exit 1

sys=/proc/sys/net/netfilter
old_max=$(cat $sys/nf_conntrack_max) old_buckets=$(cat $sys/nf_conntrack_buckets)
restore() { echo "$old_max" >$sys/nf_conntrack_max; echo "$old_buckets" >$sys/nf_conntrack_buckets; scen_cleanup; }
trap restore EXIT

# --- table full ---
ns=$(scen_netns full) || fail "cannot create a namespace"
scen_conntrack_on "$ns"
scen_bg ip netns exec "$ns" timeout 90 socat TCP-LISTEN:8081,reuseaddr,fork SYSTEM:"sleep 80"
scen_wait_listen "$ns" 8081
for _ in 1 2 3 4; do scen_bg ip netns exec "$ns" timeout 80 socat -u SYSTEM:"sleep 80" TCP:127.0.0.1:8081; done
tries=0
until [ "$(ip netns exec "$ns" cat $sys/nf_conntrack_count)" -ge 4 ]; do
	tries=$((tries + 1))
	[ $tries -le 100 ] || fail "four connections did not get conntrack entries"
	sleep 0.1
done
echo 4 >$sys/nf_conntrack_max
out=$SCEN_TMP/full.json ready=$SCEN_TMP/full.ready
scen_bg $NATBPF clash --netns "$ns" --count 1 --duration 30 --json --record "$out.rec" --ready-file "$ready" >"$out" 2>"$SCEN_TMP/full.err"
pid=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/full.err"; fail "natbpf clash did not get ready"; }
ip netns exec "$ns" timeout 3 socat - TCP:127.0.0.1:8081 </dev/null && fail "a fifth connection worked with nf_conntrack_max 4"
wait "$pid" || { cat "$SCEN_TMP/full.err"; fail "natbpf clash exited $?"; }
explain_same "$out.rec" "$out" --json
jq -s . "$out" >"$out.all" || fail "output is not JSON lines"
c='[.[] | select(.type == "clash")][0]'
# natbpf's fix, run as given in the host's namespace (the limit is global): a fifth connection then works.
jq_true "$out.all" "$c.fix.command == \"sysctl -w net.netfilter.nf_conntrack_max=8\" and $c.fix.netns == null"
sh -c "$(jq -r "$c.fix.command" "$out.all")" >/dev/null || fail "natbpf's fix failed"
fifth=""
for _ in 1 2 3; do # an emulated VM may be slow to answer; a full table would refuse all three
	ip netns exec "$ns" timeout 10 socat -u SYSTEM:"echo x" TCP:127.0.0.1:8081,connect-timeout=8 && fifth=ok && break
	sleep 1
done
[ -n "$fifth" ] || fail "a fifth connection should work after natbpf's fix (count $(ip netns exec "$ns" cat $sys/nf_conntrack_count), max $(cat $sys/nf_conntrack_max))"
echo "$old_max" >$sys/nf_conntrack_max
jq_true "$out.all" "$c.outcome == \"dropped\" and $c.cause == \"table_full\""
jq_true "$out.all" "$c.loser == null and $c.packet.proto == \"tcp\" and $c.packet.dport == 8081 and $c.packet.daddr == \"127.0.0.1\""
jq_true "$out.all" "$c.explanation | test(\"conntrack table is full \\\\(4/4 entries\\\\)\") and test(\"nf_conntrack_max\")"
jq_true "$out.all" "$c.evidence | any(test(\"without a conntrack entry\")) and any(test(\"nf_conntrack_count >= nf_conntrack_max\"))"
echo "ok table full"

# --- chain too long ---
ns=$(scen_netns chain) || fail "cannot create a namespace"
scen_conntrack_on "$ns"
echo 100000 >$sys/nf_conntrack_max
echo 1 >$sys/nf_conntrack_buckets # rounded up to one page of buckets (512)
out=$SCEN_TMP/chain.json ready=$SCEN_TMP/chain.ready
scen_bg $NATBPF clash --netns "$ns" --proto udp --duration 240 --interval 60s --json --ready-file "$ready" >"$out" 2>"$SCEN_TMP/chain.err"
pid=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/chain.err"; fail "natbpf clash did not get ready"; }
# 3 x 8000 flows, two hash nodes each, in 512 chains: far above the limit of 50-80.
for port in 9 10 11; do ip netns exec "$ns" "$udpclash" 127.0.0.1 $port 1 8000 2>/dev/null; done
sleep 2
kill -INT "$pid"
wait "$pid" || { cat "$SCEN_TMP/chain.err"; fail "natbpf clash exited $?"; }
toolong=$(ip netns exec "$ns" conntrack -S | grep -o 'chaintoolong=[0-9]*' | cut -d= -f2 | paste -sd+ | bc)
[ "$toolong" -gt 0 ] || fail "chaintoolong did not rise: the test did not fill the chains"
jq -s . "$out" >"$out.all" || fail "output is not JSON lines"
jq_true "$out.all" '[.[] | select(.type == "clash")] | length > 0' "no insert failure was reported"
jq_true "$out.all" 'all(.[] | select(.type == "clash"); .outcome == "dropped" and .cause == "chain_too_long")' \
	"every insert failure here was chaintoolong"
jq_true "$out.all" "[.[] | select(.type == \"clash\")] | length <= $toolong"
jq_true "$out.all" "all(.[] | select(.type == \"clash\"); .loser.orig.proto == \"udp\" and .winner == null and (.explanation | test(\"nf_conntrack_buckets\")))"
jq_true "$out.all" "[.[] | select(.type == \"summary\" and .final)][0] | .counters.chaintoolong == $toolong"
# The fix: at least twice the 512 buckets, host-wide (a power of two), with no namespace.
jq_true "$out.all" 'all(.[] | select(.type == "clash"); (.fix.command | test("^sysctl -w net.netfilter.nf_conntrack_buckets=[0-9]+$")) and .fix.netns == null)'
jq_true "$out.all" '[.[] | select(.type == "clash")][0].fix.command | capture("=(?<n>[0-9]+)").n | tonumber | . >= 1024 and (. as $n | [range(10; 25)] | map(pow(2; .)) | index($n) != null)'
echo "ok chain too long ($toolong chaintoolong, $(jq '[.[] | select(.type == "clash")] | length' "$out.all") reported)"
echo "PASS clash limits ($NATBPF_EXPECT_PATH)"

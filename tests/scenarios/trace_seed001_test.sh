#!/usr/bin/env bash
# Seed 001 exactly: DNAT 10.1.2.3:1222 -> 192.168.70.10:22, dropped in chain
# allowed_dnats because 192.168.70.10 . 22 is missing from set allow_in. Then,
# in the same natbpf run, the fix (add element) and the packet leaving
# through veth21.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed001.sh"

p=nb$$
scen_seed001 "$p"

out=$SCEN_TMP/trace.jsonl
ready=$SCEN_TMP/ready
scen_bg $NATBPF trace --netns "$p-host" --dport 1222 --json --duration 60 --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
tracer=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf did not get ready"; }

scen_seed001_before_after "$p" "$out"
sleep 1
kill -INT $tracer
wait $tracer || fail "natbpf trace exited $? after SIGINT"

first=$SCEN_TMP/first.json
jq -s '[.[] | select(.type == "packet")][0]' "$out" >"$first"
jq_true "$first" '.schema_version == 2 and (.trace_id | test("^[0-9a-f]{8}$"))'
jq_true "$first" '.packet.proto == "tcp" and .packet.saddr == "10.2.1.2" and .packet.daddr == "10.1.2.3" and .packet.dport == 1222 and .packet.iif == "enp0" and .packet.tcp_flags == "S"'
jq_true "$first" '.nat[0].kind == "dnat" and .nat[0].from == "10.1.2.3:1222" and .nat[0].to == "192.168.70.10:22"'
jq_true "$first" '.nat[0].rule == "ip daddr 10.1.2.3 tcp dport 1222 dnat ip to 192.168.70.10:22"'
jq_true "$first" '.verdict == "drop"'
jq_true "$first" '.drop.family == "inet" and .drop.table == "filter" and .drop.chain == "allowed_dnats" and .drop.rule == "drop" and (.drop.handle | type) == "number"'
jq_true "$first" '[.steps[] | select(.chain == "forward")][0].verdict == "jump allowed_dnats"'
jq_true "$first" '.near_misses[0].why == "192.168.70.10 . 22 is not in set inet filter allow_in"'
jq_true "$first" '.fix.command == "nft add element inet filter allow_in { 192.168.70.10 . 22 }" and .fix.netns == "'"$p-host"'"'
jq_true "$first" '.explanation | test("192.168.70.10 . 22 is not in set inet filter allow_in")'
# Evidence from the kernel's drop tracepoint, where the plan attached it.
jq_true "$first" '.drop.evidence | index("nftrace") != null'
jq_true "$first" '[.drop.evidence[] | select(test("^kfree_skb NETFILTER_DROP"))] | length == 1'
# Dropped in forward: it never left; the route had chosen veth21.
jq_true "$first" '.oif == null and .drop.route_oif == "veth21"'

# Conntrack state from the trace stream (kernels 6.16+ send it, as this
# machine's 6.18 does; the VM kernels do not).
if [ "$NATBPF_EXPECT_PATH" = tracepoint ]; then
	jq_true "$first" '.conntrack.state == "new" and (.conntrack.status | test("DST_NAT"))'
else
	jq_true "$first" '(.conntrack == null) or (.conntrack.status | test("DST_NAT"))'
fi

# How BPF records were joined to the trace: by the trace id read in BPF
# where fentry/kprobes work, else by skb, headers and time.
if [ "$NATBPF_EXPECT_PATH" = tracepoint ]; then
	jq_true "$first" '.join == "skb, headers and time"'
else
	jq_true "$first" '.join == "trace id"'
fi
# The drop's return value is named by the attach type that saw it return.
case $NATBPF_EXPECT_PATH in
fentry) jq_true "$first" 'any(.drop.evidence[]; test("^fexit nf_hook_slow returned -1"))' ;;
kprobe) jq_true "$first" 'any(.drop.evidence[]; test("^kretprobe nf_hook_slow returned -1"))' ;;
esac

# After the fix: accepted by the set rule and forwarded out of veth21.
acc=$SCEN_TMP/accepted.json
jq -s '[.[] | select(.type == "packet" and .verdict == "accept")][0]' "$out" >"$acc"
jq_true "$acc" '.fate == "forwarded" and .oif == "veth21"'
# Every packet natbpf's marking chain traced joins by its trace id where that hook runs.
[ "$NATBPF_EXPECT_PATH" = tracepoint ] || jq_true "$acc" '.join == "trace id"' "the accepted SYN should join by trace id"
jq_true "$acc" '[.steps[] | select(.chain == "allowed_dnats")][0].verdict == "accept"'
jq_true "$acc" '[.steps[] | select(.chain == "allowed_dnats")][0].rule | test("@allow_in accept")'

# Retransmissions before the fix are grouped, and the summary counts them.
jq_true "$out" 'select(.type == "summary") | .dropped >= 1 and .accepted >= 1 and .lost.nftrace == 0' 
jq -s -e '[.[] | select(.type == "packet" and .repeat_of != null)] | length >= 1' "$out" >/dev/null ||
	fail "the SYN retransmissions should be grouped as repeats"

# Nothing left behind.
ip netns exec "$p-host" nft list tables | grep -q natbpf_ && fail "trace table left behind"

# The text story names the same things.
txt=$SCEN_TMP/trace.txt
jq -r 'select(.type == "packet") | .explanation' "$out" >"$txt"
assert_contains "$txt" 'was DNATed to 192.168.70.10:22 by rule "ip daddr 10.1.2.3 tcp dport 1222 dnat ip to 192.168.70.10:22" in inet nat prerouting, then dropped in inet filter allowed_dnats by rule "drop"'
assert_contains "$txt" 'forwarded out of veth21'
echo "PASS trace seed001"

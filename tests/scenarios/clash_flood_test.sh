#!/usr/bin/env bash
# A flood for 10 s: two senders push UDP as fast as they can into a
# firewall rule that drops new connections in a namespace that tracks them,
# so every packet is a drop of an unconfirmed entry, the case natbpf clash
# must tell from an insert failure (hundreds of thousands of BPF records a
# second). natbpf keeps up or counts what it lost: it exits cleanly, its
# memory stays bounded, the summaries show the lost records, and no firewall
# drop is reported as a clash; the kernel rejects the flood before any
# record, and the summary still counts each drop.
source "$(dirname "$0")/lib.sh"
flood=$(scen_tool udpflood) || exit 1

ns=$(scen_netns cflood) || fail "cannot create a namespace"
ip netns exec "$ns" nft -f - <<'NFT' || fail "cannot load the rules"
table inet filter {
	chain output {
		type filter hook output priority filter; policy accept;
		ct state new udp dport 9 counter drop
	}
}
NFT
out=$SCEN_TMP/clash.json ready=$SCEN_TMP/ready
# No --duration: the run is stopped only after the flood has ended, so every
# drop the rule counts happened while natbpf watched.
scen_bg $NATBPF clash --netns "$ns" --interval 5s --json --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
pid=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf clash did not get ready"; }
# Software emulation (the VM) is two orders of magnitude slower than this host.
least=1000000 burst=200000
[ "${NATBPF_VM:-}" = 1 ] && least=20000 burst=10000
# Each sender uses many source ports (one socket per run): new entries all
# along. A run is short, so a sender stops soon after its 10 s.
senders=()
for s in 1 2; do
	scen_bg ip netns exec "$ns" sh -c "end=\$((\$(date +%s) + 10)); while [ \$(date +%s) -lt \$end ]; do $flood 127.0.0.1 9 $burst >/dev/null; done"
	senders+=($!)
done
peak=0
while kill -0 "${senders[@]}" 2>/dev/null; do
	rss=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
	[ "${rss:-0}" -gt "$peak" ] && peak=$rss
	sleep 0.5
done
wait "${senders[@]}"
sleep 1
kill -INT "$pid"
wait "$pid" || { cat "$SCEN_TMP/err"; fail "natbpf clash exited $? under the flood"; }
dropped=$(ip netns exec "$ns" nft list chain inet filter output | grep -o 'counter packets [0-9]*' | awk '{print $3}')
echo "flood: $dropped packets dropped by the rule in about 10 s; natbpf peak RSS ${peak} kB"
[ "$dropped" -ge "$least" ] || fail "the flood reached only $dropped drops: not a flood"
[ "$peak" -lt 150000 ] || fail "natbpf used ${peak} kB under the flood"
jq -s . "$out" >"$out.all" || fail "output is not JSON lines"
jq_true "$out.all" '[.[] | select(.type == "clash")] | length == 0' "a firewall drop was reported as a clash"
jq_true "$out.all" '[.[] | select(.type == "summary")] | length >= 3 and all(.lost_events | type == "object" or type == "number")' \
	"every summary shows its lost records"
jq_true "$out.all" '[.[] | select(.type == "summary" and .final)][0].dropped == 0'
# The kernel rejects these drops before any record (no insert_failed rose on
# their CPU), and counts them: the final summary names every one of them
# (but a few let through to user space, once per CPU) and nothing was lost.
jq_true "$out.all" "[.[] | select(.type == \"summary\" and .final)][0] |
	.unattributed_netfilter_drops >= $dropped - 16 and .unattributed_netfilter_drops <= $dropped" \
	"the final summary counts every firewall drop as not conntrack's (the rule dropped $dropped)"
[ "${NATBPF_VM:-}" = 1 ] || jq_true "$out.all" '[.[] | select(.type == "summary" and .final)][0].lost_events == 0' \
	"no record was lost: the kernel filtered the flood"
echo "PASS clash flood ($dropped drops)"

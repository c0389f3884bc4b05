#!/usr/bin/env bash
# SYNs that come the moment natbpf is ready, on a node's worth of
# iptables-legacy rules (seed 003 in a kube-proxy-shaped ruleset of 20000
# rules; 2000 in the VMs): the first ruleset snapshot is still being read
# on a worker, so the TRACE lines of those SYNs name rules natbpf does not
# have yet. They are held, raw, until it has them, while the event loop
# goes on reading the nftables trace and BPF records of the same packets.
# Three connection attempts 50 ms apart, right at ready (one SYN each):
# every SYN sent must be told exactly once, as dropped by the KUBE-FIREWALL
# rule. Before, the loop waited for the snapshot inside the first TRACE
# line; the lines read after the wait opened stories of their own, and the
# nftables trace of the same SYNs was told again as stories without a step
# (3 SYNs, 4 or 5 stories, on 20000 rules here).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed003.sh"
source "$(dirname "$0")/../../scripts/scenarios/kubeproxy.sh"

RULES=20000
[ "${NATBPF_VM:-}" = 1 ] && RULES=2000
p=nb$$ar
SCEN_NS+=("$p-client" "$p-node")
kubeproxy_up "$p" "$(kubeproxy_services $RULES iptables)" iptables-legacy 2>"$SCEN_TMP/up.err" ||
	fail "kubeproxy_up failed: $(cat "$SCEN_TMP/up.err")"
scen_bg seed003_listen "$p" 60
scen_wait_listen "$p-node" 52000
syns0=$(kubeproxy_syns_sent "$p")
out=$SCEN_TMP/trace.jsonl ready=$SCEN_TMP/ready
scen_bg $NATBPF trace --netns "$p-node" --dport 52000 --json --duration 4 --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
pid=$!
tries=6000
while [ ! -e "$ready" ] && [ $((tries -= 1)) -gt 0 ]; do sleep 0.01; done
[ -e "$ready" ] || { cat "$SCEN_TMP/err"; fail "natbpf trace did not get ready in 60 s"; }
attempts=()
for i in 1 2 3; do
	ip netns exec "$p-client" timeout 2 socat -u TCP:10.30.0.2:52000,connect-timeout=0.3 - >/dev/null 2>&1 &
	attempts+=($!)
	sleep 0.05
done
wait "${attempts[@]}"
syns=$(($(kubeproxy_syns_sent "$p") - syns0))
wait "$pid"
rc=$?
[ $rc = 0 ] || { cat "$SCEN_TMP/err"; fail "natbpf trace exited $rc"; }
[ "$syns" -ge 3 ] || fail "the client sent $syns SYNs, 3 or more expected: the incident itself is broken"

jq -s '[.[] | select(.type == "packet")]' "$out" >"$SCEN_TMP/stories"
echo "$syns SYNs sent at ready; natbpf told $(jq length "$SCEN_TMP/stories") stories:"
jq -r '.[] | "  packet \(.number) sport \(.packet.sport) \(.verdict) in \(.drop.chain // "-"), \(.steps | length) steps, join \(.join)"' "$SCEN_TMP/stories"
told=$(jq length "$SCEN_TMP/stories")
[ "$told" = "$syns" ] || { cat "$SCEN_TMP/err"; fail "each SYN sent at ready must be told exactly once: $syns sent, $told told (sports $(jq -c '[.[].packet.sport]' "$SCEN_TMP/stories"))"; }
jq_true "$SCEN_TMP/stories" 'all(.verdict == "drop" and .drop.table == "filter" and .drop.chain == "KUBE-FIREWALL"
	and (.drop.rule // "" | contains("-m mark --mark 0x8000/0x8000 -j DROP")) and (.steps | length) > 0)' \
	"every story should be a SYN dropped by the KUBE-FIREWALL rule, told with its steps"
echo "PASS trace tells the SYNs that come at ready once each"

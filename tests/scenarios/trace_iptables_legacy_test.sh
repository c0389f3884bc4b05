#!/usr/bin/env bash
# Seed 001 built with iptables-legacy (the workflow of seed 003, automated):
# natbpf installs a TRACE rule, routes TRACE to NFLOG, resolves the
# "table:chain:rule N" lines against iptables-legacy-save, and removes the
# rule and restores the logger on exit.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed001.sh"
command -v iptables-legacy >/dev/null || skip "iptables-legacy is not installed"

p=nb$$
seed001_up "$p" iptables-legacy || fail "cannot build the namespaces"
SCEN_NS+=("$p-client" "$p-host" "$p-ct")
scen_bg seed001_listen "$p" >/dev/null
logger_before=$(ip netns exec "$p-host" cat /proc/sys/net/netfilter/nf_log/2)

out=$SCEN_TMP/trace.jsonl
ready=$SCEN_TMP/ready
scen_bg $NATBPF trace --netns "$p-host" --dport 1222 --json --count 1 --duration 60 --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
tracer=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf did not get ready"; }
seed001_connect "$p" 2 && fail "the connection should time out"
wait $tracer || fail "natbpf trace exited $?"

first=$SCEN_TMP/first.json
jq -s '[.[] | select(.type == "packet")][0]' "$out" >"$first"
jq_true "$first" '.nat[0].kind == "dnat" and .nat[0].to == "192.168.70.10:22"'
jq_true "$first" '.nat[0].rule == "-A PREROUTING -d 10.1.2.3/32 -p tcp -m tcp --dport 1222 -j DNAT --to-destination 192.168.70.10:22"'
jq_true "$first" '.drop.family == "ip" and .drop.table == "filter" and .drop.chain == "ALLOWED_DNATS" and .drop.rule == "-A ALLOWED_DNATS -j DROP"'
jq_true "$first" '[.steps[] | select(.chain == "FORWARD")][0].rule == "-A FORWARD -m conntrack --ctstate DNAT -j ALLOWED_DNATS"'
jq_true "$first" '.near_misses[0].rule == "-A ALLOWED_DNATS -d 192.168.70.11/32 -p tcp -m tcp --dport 22 -j ACCEPT"'
jq_true "$out" 'select(.type == "summary") | .packets == 1'
jq_true "$first" '[.steps[] | select(.chain == "ALLOWED_DNATS")][0].evidence == "nflog"'
jq_true "$first" '.drop.evidence | index("iptables TRACE (nflog)") != null'
ip netns exec "$p-host" iptables-legacy-save | grep -q natbpf_ && fail "TRACE rule left behind"
[ "$(ip netns exec "$p-host" cat /proc/sys/net/netfilter/nf_log/2)" = "$logger_before" ] || fail "nf_log.2 not restored"
echo "PASS trace iptables-legacy"

#!/usr/bin/env bash
# Seed 003 under `natbpf drops`, with iptables-legacy, iptables-nft and the
# same rules written for nftables (meta mark):
# the SYNs to NodePort 52000 are the KUBE-FIREWALL rule's (never a conntrack
# insert failure: insert_failed does not rise), the mark it matched is traced
# to KUBE-MARK-DROP, reached from the "no local endpoints" rule and the
# KUBE-NODEPORTS rule for 52000; port 80 (DNATed to 52000) works and is not
# blamed. The count equals the drop rule's counter. Recorded, and explained
# offline to the same output.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed003.sh"
command -v socat >/dev/null || skip "socat is not installed"

run_case() { # BACKEND
	local ipt=$1 p
	# short: interface names are ${p}c and ${p}n, 15 characters at most
	case $ipt in nft) p=nb$$nf ;; iptables-nft) p=nb$$xn ;; *) p=nb$$xl ;; esac
	SCEN_NS+=("$p-client" "$p-node")
	seed003_up "$p" "$ipt" 2>"$SCEN_TMP/up.err" || fail "seed003_up $ipt failed: $(cat "$SCEN_TMP/up.err")"
	scen_bg seed003_listen "$p" 30
	scen_wait_listen "$p-node" 52000
	local out=$SCEN_TMP/$ipt.json ready=$SCEN_TMP/$ipt.ready
	scen_bg $NATBPF drops --duration 6s --json --record "$out.rec" --ready-file "$ready" >"$out" 2>"$SCEN_TMP/$ipt.err"
	local pid=$!
	scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/$ipt.err"; fail "natbpf drops did not get ready"; }
	seed003_connect "$p" 52000 && fail "$ipt: port 52000 should be dropped by KUBE-FIREWALL"
	seed003_connect "$p" 80 || fail "$ipt: port 80 (DNAT to the host service) should work"
	wait "$pid" || { cat "$SCEN_TMP/$ipt.err"; fail "natbpf drops exited $?"; }
	explain_same "$out.rec" "$out" --json
	local dropped cause rule set_by via0 via1 mark
	if [ "$ipt" = nft ]; then
		dropped=$(ip netns exec "$p-node" nft list chain ip kube input | grep -o 'counter packets [0-9]*' | awk '{print $3}')
		cause="nftables rule or chain policy drop"
		rule='ip kube input: rule .*meta mark & 0x00008000 == 0x00008000 counter drop comment'
		set_by='ip kube mark_drop'
		via0='demo/web:http has no local endpoints'
		via1='tcp dport 52000 counter jump xlb_web'
		mark='0x00008000/0x00008000'
	else
		dropped=$(ip netns exec "$p-node" "$ipt-save" -c -t filter | grep -- '-A KUBE-FIREWALL' | sed 's/^\[\([0-9]*\):.*/\1/')
		cause="$ipt rule drop"
		rule='-t filter KUBE-FIREWALL rule 1: -A KUBE-FIREWALL .*--mark 0x8000/0x8000 -j DROP'
		set_by='-t nat KUBE-MARK-DROP rule 1'
		via0='demo/web:http has no local endpoints'
		via1='KUBE-NODEPORTS .*--dport 52000'
		mark='0x8000/0x8000'
	fi
	[ "$dropped" -ge 1 ] || fail "$ipt: KUBE-FIREWALL counted no drop"
	jq -s "[.[] | select(.type == \"drop_cause\" and .layer == \"netfilter\" and .netns == \"$p-node\")]" "$out" >"$out.node"
	jq_true "$out.node" 'length == 1' "$ipt: one cause in the node namespace"
	local c='.[0]'
	jq_true "$out.node" "$c.cause == \"$cause\" and $c.count == $dropped" "$ipt: the drops are the firewall rule's ($dropped)"
	jq_true "$out.node" "$c.flows == {\"tcp -> 10.30.0.2:52000\": $dropped}" "$ipt: only port 52000 is blamed"
	jq_true "$out.node" "$c.rules | length == 1 and (.[0].rule | test(\"$rule\")) and .[0].count == $dropped"
	jq_true "$out.node" "$c.mark_origins[0].set_by.where | test(\"$set_by\")"
	jq_true "$out.node" "$c.mark_origins[0].via[0].rule | test(\"$via0\")"
	jq_true "$out.node" "$c.mark_origins[0].via[1].rule | test(\"$via1\")"
	jq_true "$out.node" "([$c.evidence[] | select(test(\"insert_failed \\\\+[1-9]\"))] | length == 0) and ($c.cause | test(\"conntrack\") | not)" \
		"$ipt: conntrack must not be blamed"
	# The text form says the same.
	setpriv --reuid=65534 --regid=65534 --clear-groups $NATBPF explain "$out.rec" >"$out.txt" 2>/dev/null || fail "explain (text) failed"
	assert_contains "$out.txt" "$cause  \[.*netns $p-node\]"
	assert_contains "$out.txt" "mark $mark .* was set by .*$set_by"
	assert_contains "$out.txt" 'reached from .*has no local endpoints'
	echo "ok $ipt"
}

run_case nft
run_case iptables-nft
if command -v iptables-legacy >/dev/null; then run_case iptables-legacy; else fail "iptables-legacy is not installed (scripts/setup.sh installs it)"; fi
echo "PASS drops seed003"

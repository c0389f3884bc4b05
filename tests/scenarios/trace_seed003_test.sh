#!/usr/bin/env bash
# Seed 003 under `natbpf trace --dport 52000`, with iptables-legacy,
# iptables-nft and the same rules written for nftables: the SYN to NodePort
# 52000 is dropped by the KUBE-FIREWALL rule, and the story says why — the
# mark it matched was set in KUBE-MARK-DROP, reached from the rule commented
# "demo/web:http has no local endpoints" — and that a host process (socat)
# listens on 52000: a NodePort on the port of a host service. No fix is
# given: the evidence does not determine one.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed003.sh"

run_case() { # BACKEND
	local ipt=$1 p
	case $ipt in nft) p=nb$$tf ;; iptables-nft) p=nb$$tn ;; *) p=nb$$tl ;; esac
	SCEN_NS+=("$p-client" "$p-node")
	seed003_up "$p" "$ipt" 2>"$SCEN_TMP/up.err" || fail "seed003_up $ipt failed: $(cat "$SCEN_TMP/up.err")"
	scen_bg seed003_listen "$p" 30
	scen_wait_listen "$p-node" 52000
	local out=$SCEN_TMP/$ipt.jsonl ready=$SCEN_TMP/$ipt.ready
	scen_bg $NATBPF trace --netns "$p-node" --dport 52000 --json --duration 60 --ready-file "$ready" >"$out" 2>"$SCEN_TMP/$ipt.err"
	local pid=$!
	scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/$ipt.err"; fail "$ipt: natbpf trace did not get ready"; }
	seed003_connect "$p" 52000 && fail "$ipt: port 52000 should be dropped by KUBE-FIREWALL"
	sleep 1
	kill -INT "$pid"
	wait "$pid" || { cat "$SCEN_TMP/$ipt.err"; fail "$ipt: natbpf trace exited $?"; }
	local first=$SCEN_TMP/$ipt.first
	jq -s '[.[] | select(.type == "packet" and .verdict == "drop")][0]' "$out" >"$first"
	jq_true "$first" '.packet.dport == 52000 and .packet.tcp_flags == "S"' "$ipt: no dropped SYN to 52000"
	local set_in matched
	if [ "$ipt" = nft ]; then
		set_in='ip kube mark_drop'
		matched='meta mark & 0x00008000 == 0x00008000 counter drop'
		jq_true "$first" '.mark_origins[0].set_by | test("meta mark set meta mark \\| 0x00008000")'
	else
		set_in='ip nat KUBE-MARK-DROP'
		matched='-m mark --mark 0x8000/0x8000 -j DROP'
		jq_true "$first" '.mark_origins[0].set_by | test("-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000")'
	fi
	jq_true "$first" '.mark_origins[0].set_in == "'"$set_in"'"' "$ipt: the mark should be traced to $set_in"
	jq_true "$first" '.mark_origins[0].matched_by | contains("'"$matched"'")' "$ipt: the drop rule should be the mark's matcher"
	jq_true "$first" '.mark_origins[0].comment == "demo/web:http has no local endpoints"' "$ipt: the no-endpoints comment"
	jq_true "$first" '.listeners[0].address == "0.0.0.0:52000" and .listeners[0].comm == "socat" and .listeners[0].pid > 0' \
		"$ipt: the host's socat listening on 52000 should be named"
	jq_true "$first" '.explanation | test("set by rule .* in '"$set_in"'") and test("demo/web:http has no local endpoints") and test("A local socket listens on 0.0.0.0:52000 \\(socat, pid [0-9]+\\)")'
	jq_true "$first" '.fix == null' "$ipt: no fix is determined by this evidence"
	echo "ok $ipt"
}

for backend in iptables-legacy iptables-nft nft; do run_case "$backend"; done
echo "PASS trace seed003"

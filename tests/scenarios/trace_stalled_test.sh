#!/usr/bin/env bash
# A reader that stalls: natbpf trace is stopped (SIGSTOP) while the packets
# it traces go by, as a loaded node's scheduler may keep it off the CPU, and
# then continued. Its events all arrive at once, every trace message received
# after every ring-buffer record, so receive times say nothing about which
# record is whose. Seed 003's SYNs to NodePort 52000 (dropped, each attempt
# retransmitted once), with iptables-legacy (NFLOG) and nftables (nftrace):
#   phase 1: stopped right after ready, before the loop's first tick
#            (before, each SYN was told twice: its trace without its drop
#            record, and the record alone as "dropped by netfilter");
#   phase 2: stopped again once it had run a while (before, a SYN's record
#            went to its retransmission's story, which then held two
#            kfree_skb records, and the first story none).
# Each SYN sent must be told exactly once, by the drop rule, with one
# kfree_skb record of its own.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed003.sh"
source "$(dirname "$0")/../../scripts/scenarios/kubeproxy.sh"

# attempts PREFIX PID: two connection attempts (4 SYNs) while PID is stopped;
# it is continued whatever happens (a stopped natbpf would hang cleanup).
attempts() {
	local connected=0
	kill -STOP "$2"
	seed003_connect "$1" 52000 && connected=1
	seed003_connect "$1" 52000 && connected=1
	kill -CONT "$2"
	[ "$connected" = 0 ] || fail "port 52000 should be dropped"
}

run_case() { # BACKEND CHAIN
	local ipt=$1 chain=$2 p
	case $ipt in nft) p=nb$$sf ;; iptables-nft) p=nb$$sn ;; *) p=nb$$sl ;; esac
	SCEN_NS+=("$p-client" "$p-node")
	seed003_up "$p" "$ipt" 2>"$SCEN_TMP/up.err" || fail "seed003_up $ipt failed: $(cat "$SCEN_TMP/up.err")"
	scen_bg seed003_listen "$p" 60
	scen_wait_listen "$p-node" 52000
	local out=$SCEN_TMP/$ipt.jsonl ready=$SCEN_TMP/$ipt.ready syns0 syns
	syns0=$(kubeproxy_syns_sent "$p")
	local rec=${3:-}
	scen_bg $NATBPF trace --netns "$p-node" --dport 52000 --json --duration 120 --ready-file "$ready" ${rec:+--record "$rec"} \
		>"$out" 2>"$SCEN_TMP/$ipt.err"
	local pid=$!
	scen_wait_file "$ready" 600 || { cat "$SCEN_TMP/$ipt.err"; fail "$ipt: natbpf trace did not get ready"; }
	attempts "$p" "$pid" # phase 1
	sleep 2              # the loop runs, ticks, tells those
	attempts "$p" "$pid" # phase 2
	sleep 2
	kill -INT "$pid"
	wait "$pid" || { cat "$SCEN_TMP/$ipt.err"; fail "$ipt: natbpf trace exited $?"; }
	syns=$(($(kubeproxy_syns_sent "$p") - syns0))
	local all=$SCEN_TMP/$ipt.stories
	jq -s '[.[] | select(.type == "packet")]' "$out" >"$all"
	echo "$ipt: $syns SYNs sent while natbpf was stopped; it told $(jq length "$all") stories:"
	jq -r '.[] | "  packet \(.number) sport \(.packet.sport) \(.packet.tcp_flags) \(.verdict) in \(.drop.table // "-") \(.drop.chain // "-")"
		+ " steps \(.steps | length) join \(.join) evidence \(.drop.evidence // [] | join(" + "))"' "$all"
	[ "$syns" -ge 8 ] || fail "$ipt: the client sent $syns SYNs in 4 attempts: the incident itself is broken"
	jq_true "$all" "length == $syns" "$ipt: $syns SYNs were sent and dropped; each must be told exactly once"
	jq_true "$all" 'all(.verdict == "drop" and .packet.tcp_flags == "S" and .packet.dport == 52000
		and .drop.chain == "'"$chain"'" and (.steps | length) > 0)' \
		"$ipt: every story should be a traced SYN dropped in $chain (none told from its drop record alone)"
	jq_true "$all" 'all([.drop.evidence[] | select(startswith("kfree_skb"))] | length == 1)' \
		"$ipt: every story should hold its own packet's kfree_skb record, and only that one"
	if [ -n "$rec" ]; then
		# explain follows the recorded flushes: the stall is in it, and the
		# stories told from it are the live run's.
		$NATBPF explain "$rec" --json >"$SCEN_TMP/$ipt.offline" 2>&1 || { cat "$SCEN_TMP/$ipt.offline"; fail "$ipt: natbpf explain failed"; }
		jq -s '[.[] | select(.type == "packet")]' "$SCEN_TMP/$ipt.offline" >"$SCEN_TMP/$ipt.offline.stories"
		cmp -s "$all" "$SCEN_TMP/$ipt.offline.stories" || {
			diff <(jq -c '.[] | [.number, .packet.sport, (.steps | length), .join]' "$all") \
				<(jq -c '.[] | [.number, .packet.sport, (.steps | length), .join]' "$SCEN_TMP/$ipt.offline.stories") | head -20
			fail "$ipt: explain of the recording told other stories than the live run"
		}
		echo "$ipt: explain of the recording told the same $(jq length "$all") stories"
	fi
	echo "ok $ipt"
}

run_case iptables-legacy KUBE-FIREWALL
run_case nft input
# Recorded (the ruleset is then read before ready, not on a worker): the
# same assertions, and explain of the recording must tell the same stories.
run_case iptables-nft KUBE-FIREWALL "$SCEN_TMP/stalled.rec"
echo "PASS trace stalled"

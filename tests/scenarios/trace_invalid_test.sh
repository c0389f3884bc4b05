#!/usr/bin/env bash
# Conntrack's INVALID, with its reason: a server namespace drops
# `ct state invalid`. A SYN+RST (conntrack logs "invalid tcp flag
# combination"), a UDP datagram with a wrong checksum ("bad checksum") and a
# bare ACK of no connection with nf_conntrack_tcp_loose=0 (conntrack logs
# nothing: natbpf infers the reason from the sysctl and the flags, says so,
# and gives the sysctl that would let it pass). Where kprobes work natbpf
# reads the reason at nf_l4proto_log_invalid and changes no setting; else it
# routes conntrack's INVALID log to NFLOG for the run: nf_conntrack_log_invalid
# and nf_log are given back after SIGINT and SIGTERM, and after SIGKILL by
# the next run.
source "$(dirname "$0")/lib.sh"
RAWPKT=$(scen_tool rawpkt)

cli=$(scen_netns icli) || fail "cannot create a namespace"
srv=$(scen_netns isrv) || fail "cannot create a namespace"
ip link add "nb$$c" netns "$cli" type veth peer name "nb$$s" netns "$srv" || fail "cannot create the veth pair"
ip -n "$cli" addr add 10.41.0.1/24 dev "nb$$c"
ip -n "$srv" addr add 10.41.0.2/24 dev "nb$$s"
ip -n "$cli" link set "nb$$c" up
ip -n "$srv" link set "nb$$s" up
ip netns exec "$srv" nft -f - <<'NFT' || fail "cannot load the server's ruleset"
table inet filter {
	chain input {
		type filter hook input priority filter; policy accept;
		ct state invalid counter drop
	}
}
NFT
ip netns exec "$srv" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0 || fail "cannot set nf_conntrack_tcp_loose"
sysctl_of() { ip netns exec "$srv" cat "/proc/sys/net/netfilter/$1"; }
ip netns exec "$srv" sh -c 'echo NONE >/proc/sys/net/netfilter/nf_log/2' || fail "cannot set nf_log"
[ "$(sysctl_of nf_conntrack_log_invalid)" = 0 ] || fail "nf_conntrack_log_invalid should start at 0"

out=$SCEN_TMP/trace.jsonl
ready=$SCEN_TMP/ready
scen_bg $NATBPF trace --netns "$srv" --dport 7000 --json --duration 60 --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
tracer=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf did not get ready"; }
if [ "${NATBPF_EXPECT_PATH:-tracepoint}" = tracepoint ]; then
	log_while=255 nflog_while=nfnetlink_log evidence='NFLOG'
else
	log_while=0 nflog_while=NONE evidence='^kprobe nf_l4proto_log_invalid$'
fi
[ "$(sysctl_of nf_conntrack_log_invalid)" = $log_while ] || fail "nf_conntrack_log_invalid reads $(sysctl_of nf_conntrack_log_invalid) while tracing, not $log_while"
[ "$(sysctl_of nf_log/2)" = $nflog_while ] || fail "nf_log/2 reads $(sysctl_of nf_log/2) while tracing, not $nflog_while"

send() { ip netns exec "$cli" "$RAWPKT" 10.41.0.1 10.41.0.2 "$@" || fail "rawpkt $* failed"; }
send 40001 7000 tcp SR
sleep 0.3
send 40002 7000 tcp A
sleep 0.3
send 40003 7000 udp bad-csum
sleep 1
kill -INT $tracer
wait $tracer || { cat "$SCEN_TMP/err"; fail "natbpf trace exited $? after SIGINT"; }
[ "$(sysctl_of nf_conntrack_log_invalid)" = 0 ] || fail "nf_conntrack_log_invalid not restored after SIGINT"
[ "$(sysctl_of nf_log/2)" = NONE ] || fail "nf_log/2 not restored after SIGINT"

[ -n "${NATBPF_SCEN_DUMP:-}" ] && jq -c 'select(.type == "packet") | {number, sport: .packet.sport, flags: .packet.tcp_flags, steps: [.steps[] | .chain + " " + .verdict], join, trace_id, inv: .conntrack.invalid_reason}' "$out" >&2
story() { jq -c "select(.type == \"packet\" and .packet.sport == $1)" "$out" | head -1 >"$SCEN_TMP/$1.json"; echo "$SCEN_TMP/$1.json"; }
synrst=$(story 40001)
jq_true "$synrst" '.verdict == "drop" and .drop.rule == "ct state invalid counter drop"'
jq_true "$synrst" '.conntrack.invalid_reason == "invalid tcp flag combination" and .conntrack.invalid_inferred == false'
jq_true "$synrst" '.conntrack.invalid_evidence | test("'"$evidence"'")'
jq_true "$synrst" '.explanation | test("Conntrack called it INVALID: invalid tcp flag combination")'
jq_true "$synrst" '.fix == null'

ack=$(story 40002)
jq_true "$ack" '.verdict == "drop" and .conntrack.invalid_inferred == true'
jq_true "$ack" '.conntrack.invalid_reason | test("not a SYN, while nf_conntrack_tcp_loose=0")'
jq_true "$ack" '.conntrack.invalid_evidence | test("inferred: TCP flags \\[A\\]")'
jq_true "$ack" '.fix.command == "sysctl -w net.netfilter.nf_conntrack_tcp_loose=1" and .fix.netns == "'"$srv"'"'

udp=$(story 40003)
jq_true "$udp" '.packet.proto == "udp" and .verdict == "drop"'
jq_true "$udp" '.conntrack.invalid_reason == "bad checksum" and .conntrack.invalid_inferred == false'

# The fix natbpf gave, applied as given: the bare ACK now passes conntrack
# (picked up mid-stream) and the drop rule's counter stays.
cmd=$(jq -r '.fix.command' "$ack")
ip netns exec "$srv" $cmd >/dev/null || fail "natbpf's fix '$cmd' failed"
before=$(ip netns exec "$srv" nft list ruleset | grep -o 'packets [0-9]*' | head -1)
send 40004 7000 tcp A
sleep 0.3
after=$(ip netns exec "$srv" nft list ruleset | grep -o 'packets [0-9]*' | head -1)
[ "$before" = "$after" ] || fail "after the fix the bare ACK was still dropped as INVALID ($before, then $after)"

# Settings given back after SIGTERM, and after SIGKILL by the next run.
ip netns exec "$srv" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
for sig in TERM KILL; do
	ready=$SCEN_TMP/ready-$sig
	$NATBPF trace --netns "$srv" --dport 7000 --ready-file "$ready" >"$SCEN_TMP/run-$sig" 2>&1 &
	pid=$!
	scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/run-$sig"; fail "natbpf did not get ready ($sig)"; }
	[ "$(sysctl_of nf_conntrack_log_invalid)" = $log_while ] || fail "nf_conntrack_log_invalid should read $log_while while tracing ($sig)"
	kill -$sig $pid
	wait $pid 2>/dev/null
	if [ $sig = KILL ]; then
		[ "$(sysctl_of nf_conntrack_log_invalid)" = $log_while ] || fail "after SIGKILL the setting should still be natbpf's"
		ready=$SCEN_TMP/ready-after
		$NATBPF trace --netns "$srv" --dport 7000 --ready-file "$ready" >"$SCEN_TMP/run-after" 2>&1 &
		pid=$!
		scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/run-after"; fail "natbpf did not get ready after a SIGKILL"; }
		kill -INT $pid
		wait $pid || fail "natbpf exited $? after SIGINT"
	fi
	[ "$(sysctl_of nf_conntrack_log_invalid)" = 0 ] || fail "nf_conntrack_log_invalid not restored after SIG$sig"
	[ "$(sysctl_of nf_log/2)" = NONE ] || fail "nf_log/2 not restored after SIG$sig: $(sysctl_of nf_log/2)"
done
ino=$(ip netns exec "$srv" stat -L -c %i /proc/self/ns/net)
ls /run/natbpf 2>/dev/null | grep -q "\.$ino\." && fail "state of the namespace left in /run/natbpf"
echo "PASS trace invalid"

#!/usr/bin/env bash
# Traced packets at the rate limit: a 3 s UDP flood to the traced port,
# dropped by an output rule, with natbpf trace marking at most 50 packets a
# second of it. Every marked packet is told as a story that ends in the drop
# rule, the count stays within the limit, and neither the nftables trace
# socket (ENOBUFS) nor the ring buffer lost anything, so no story was lost.
# (`nft monitor trace` beside it is no ground truth: it saw fewer packets
# than natbpf told.)
source "$(dirname "$0")/lib.sh"
flood=$(scen_tool udpflood) || exit 1

ns=$(scen_netns rate) || fail "cannot create a namespace"
ip netns exec "$ns" nft -f - <<'NFT' || fail "cannot load the ruleset"
table inet filter {
	chain output {
		type filter hook output priority filter; policy accept;
		udp dport 9 counter drop
	}
}
NFT
out=$SCEN_TMP/trace.jsonl ready=$SCEN_TMP/ready
scen_bg $NATBPF trace --netns "$ns" --dport 9 --rate 50/second --json --duration 60 --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
tracer=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf did not get ready"; }
start=$(date +%s)
while [ "$(date +%s)" -lt $((start + 3)) ]; do ip netns exec "$ns" "$flood" 127.0.0.1 9 50000 >/dev/null; done
secs=$(($(date +%s) - start))
sleep 1.5
kill -INT $tracer
wait $tracer || { cat "$SCEN_TMP/err"; fail "natbpf trace exited $?"; }
sent=$(ip netns exec "$ns" nft list chain inet filter output | grep -o 'counter packets [0-9]*' | awk '{print $3}')
stories=$(jq -s '[.[] | select(.type == "packet")] | length' "$out")
echo "flood: $sent packets in ${secs}s; $stories stories"
# Software emulation (the VM) is two orders of magnitude slower than this host.
least_sent=100000 least_told=100
[ "${NATBPF_VM:-}" = 1 ] && least_sent=2000 least_told=50
[ "$sent" -ge "$least_sent" ] || fail "only $sent packets: not a flood"
# 50 a second, and the limit's burst (5) on top
[ "$stories" -ge "$least_told" ] && [ "$stories" -le $((50 * (secs + 1) + 5)) ] ||
	fail "$stories stories in ${secs}s at 50/second"
jq -s -e '[.[] | select(.type == "packet")] | all(.verdict == "drop")' "$out" >/dev/null ||
	fail "a story of the flood does not end in the drop rule"
jq -s -e --argjson n "$stories" '[.[] | select(.type == "summary")][-1] |
	.packets == $n and .lost.nftrace == 0 and .lost.bpf == 0' "$out" >/dev/null ||
	{ jq -c 'select(.type == "summary")' "$out" >&2; fail "the summary counts lost events or other packets"; }
echo "PASS trace at the rate limit ($stories stories)"

#!/usr/bin/env bash
# Two natbpf traces in one namespace, with a user's own trace-everything rule
# present (as people add for `nft monitor trace`): each run tells only the
# packets its own marking rule traced. The run for port 2222 (no traffic)
# tells nothing; the run for 1222 tells only port-1222 packets. Each holds
# its first packet in a queue of its own. Both leave nothing behind.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed001.sh"

p=nb$$
scen_seed001 "$p"
ip netns exec "$p-host" nft -f - <<'NFT' || fail "cannot add the user's trace rule"
table inet usertrace {
	chain pre { type filter hook prerouting priority 0; policy accept; meta nftrace set 1; }
	chain out { type filter hook output priority 0; policy accept; meta nftrace set 1; }
}
NFT
for port in 2222 1222; do
	scen_bg $NATBPF trace --netns "$p-host" --dport $port --json --duration 8 --ready-file "$SCEN_TMP/$port.ready" \
		>"$SCEN_TMP/$port.json" 2>"$SCEN_TMP/$port.err"
	echo $! >"$SCEN_TMP/$port.pid"
done
for port in 2222 1222; do
	scen_wait_file "$SCEN_TMP/$port.ready" 300 || { cat "$SCEN_TMP/$port.err"; fail "natbpf trace --dport $port did not get ready"; }
done
# Each run holds its first packet in a queue of its own.
for port in 2222 1222; do
	assert_contains "$SCEN_TMP/$port.err" 'held in NFQUEUE [0-9]+ until it is on'
done
q1=$(grep -oE 'held in NFQUEUE [0-9]+' "$SCEN_TMP/2222.err")
q2=$(grep -oE 'held in NFQUEUE [0-9]+' "$SCEN_TMP/1222.err")
[ "$q1" != "$q2" ] || fail "both runs bound the same queue ($q1)"
seed001_connect "$p" 2 && fail "the connection should time out (seed 001 before the fix)"
ip netns exec "$p-host" ping -c 2 -W 1 10.2.1.2 >/dev/null 2>&1 # other traced traffic
for port in 2222 1222; do
	wait "$(cat "$SCEN_TMP/$port.pid")" || { cat "$SCEN_TMP/$port.err"; fail "natbpf trace --dport $port exited $?"; }
done
jq -s . "$SCEN_TMP/2222.json" >"$SCEN_TMP/2222.all" || fail "output is not JSON lines"
jq_true "$SCEN_TMP/2222.all" '[.[] | select(.type == "packet")] | length == 0' "the 2222 run told packets other tracers marked"
jq_true "$SCEN_TMP/2222.all" '[.[] | select(.type == "summary")][0].packets == 0'
jq -s . "$SCEN_TMP/1222.json" >"$SCEN_TMP/1222.all" || fail "output is not JSON lines"
jq_true "$SCEN_TMP/1222.all" '[.[] | select(.type == "packet")] | length >= 1 and all(.packet.dport == 1222)' \
	"the 1222 run must tell the port-1222 SYNs and nothing else"
ip netns exec "$p-host" nft list tables | grep -q natbpf_ && fail "a natbpf table was left behind"
echo "PASS trace concurrent"

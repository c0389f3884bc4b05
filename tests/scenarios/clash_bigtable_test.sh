#!/usr/bin/env bash
# A 2-port SNAT range exhausted by three connections (as clash_range), in a
# namespace whose conntrack table also holds 200k unrelated UDP entries
# (20k under emulation): the range usage must still read 2 of 2, counted by
# 2 tuple lookups, never by a dump of the table. A second namespace, just as
# full, holds a 5000-port range (past ct_range_usage's 4096 lookups) whose
# ports are all taken by entries inserted here: counted by a dump the kernel
# filters, which sends only the destination's 5000 entries.
source "$(dirname "$0")/lib.sh"
command -v socat >/dev/null || skip "socat is not installed"
command -v conntrack >/dev/null || skip "conntrack is not installed"
udpflood=$(scen_tool udpflood) || exit 1
fill=200000
[ "${NATBPF_VM:-0}" = 1 ] && fill=20000
max=$(cat /proc/sys/net/netfilter/nf_conntrack_max)
[ "$max" -gt $((fill + 6000)) ] || fill=$((max - 6000)) # room for case 2's 5000; nf_conntrack_max is global: never raised here

mkns() { # name: a namespace prefixed nbh2 (removed by lib.sh's cleanup)
	local ns=nbh2$$-$1
	echo "$ns" >>"$SCEN_TMP/netns"
	ip netns add "$ns" || fail "cannot create namespace $ns"
	ip -n "$ns" link set lo up
	# Unreplied UDP entries live 30 s by default: long enough for the test.
	ip netns exec "$ns" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=600 2>/dev/null
}

fill_table() { # ns: $fill entries towards 127.0.2.x, none involving the NAT range
	local ns=$1 per=50000 done=0 i=2
	while [ $done -lt $fill ]; do
		local n=$((fill - done < per ? fill - done : per))
		ip netns exec "$ns" "$udpflood" "127.0.2.$i" 1024 "$n" "$n" >/dev/null || fail "udpflood failed"
		done=$((done + n)) i=$((i + 1))
	done
	local count
	count=$(ip netns exec "$ns" cat /proc/sys/net/netfilter/nf_conntrack_count)
	[ "$count" -ge "$fill" ] || fail "the table of $ns holds $count entries, not $fill"
	echo "$ns: $count conntrack entries"
}

# clash_in NS PORT NAME: natbpf clash while a third connection finds the range taken.
clash_in() {
	local ns=$1 port=$2 name=$3
	out=$SCEN_TMP/$name.json
	local ready=$SCEN_TMP/$name.ready
	scen_bg ip netns exec "$ns" timeout 90 socat "TCP-LISTEN:$port,reuseaddr,fork" SYSTEM:"sleep 30"
	scen_bg $NATBPF clash --netns "$ns" --proto tcp --count 1 --duration 30 --json --record "$out.rec" --ready-file "$ready" >"$out" 2>"$SCEN_TMP/$name.err"
	local pid=$!
	scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/$name.err"; fail "natbpf clash did not get ready"; }
	scen_wait_listen "$ns" "$port"
	"${4:-true}" # connections that take the range before
	scen_bg ip netns exec "$ns" timeout 6 socat -u SYSTEM:"sleep 6" "TCP:127.0.0.1:$port"
	wait "$pid" || { cat "$SCEN_TMP/$name.err"; fail "natbpf clash exited $?"; }
	explain_same "$out.rec" "$out" --json
	jq -s . "$out" >"$out.all" || fail "output is not JSON lines"
}

# Case 1: exhausted 2-port range, lookups.
mkns big
ns=nbh2$$-big
ip netns exec "$ns" iptables -t nat -A POSTROUTING -p tcp -d 127.0.0.1 --dport 8080 -j SNAT --to-source 127.0.0.1:40000-40001 ||
	fail "iptables failed"
fill_table "$ns"
established() { ip netns exec "$ns" ss -Htn state established "( dport = :8080 )" | wc -l; }
two_connections() {
	for i in 1 2; do
		scen_bg ip netns exec "$ns" timeout 25 socat -u SYSTEM:"sleep 25" TCP:127.0.0.1:8080
		tries=0
		while [ "$(established)" -lt $i ] && [ $tries -lt 300 ]; do sleep 0.1; tries=$((tries + 1)); done
	done
	[ "$(established)" = 2 ] || fail "the first two connections should be established"
}
clash_in "$ns" 8080 big two_connections
c='[.[] | select(.type == "clash")][0]'
jq_true "$out.all" "$c.outcome == \"dropped\" and $c.cause == \"range_exhausted\""
jq_true "$out.all" "$c.nat.range.capacity == 2 and $c.nat.range.used == 2"
jq_true "$out.all" "$c.nat.range.counted_by == \"2 tuple lookups\""
jq_true "$out.all" "$c.evidence | any(test(\"^range usage: ctnetlink, 2 tuple lookups: 2 of 2 tuples\"))"
echo "ok exhausted range beside $fill entries"

# Case 2: a 5000-port range taken by entries inserted beside $fill others:
# counted by a dump the kernel filters to the destination's 5000 entries.
mkns wide
ns=nbh2$$-wide
ip netns exec "$ns" iptables -t nat -A POSTROUTING -p tcp -d 127.0.0.1 --dport 8081 -j SNAT --to-source 127.0.0.1:40000-44999 ||
	fail "iptables failed"
fill_table "$ns"
for i in $(seq 0 4999); do
	echo "-I -p tcp -s 127.0.0.1 -d 127.0.0.1 --sport $((20000 + i)) --dport 8081 -r 127.0.0.1 -q 127.0.0.1 --reply-port-src 8081 --reply-port-dst $((40000 + i)) --state ESTABLISHED -u SEEN_REPLY,ASSURED -t 600"
done >"$SCEN_TMP/taken.ct"
ip netns exec "$ns" conntrack -R "$SCEN_TMP/taken.ct" >/dev/null 2>&1 || fail "conntrack -R failed"
clash_in "$ns" 8081 wide
jq_true "$out.all" "$c.outcome == \"dropped\" and $c.cause == \"range_exhausted\""
jq_true "$out.all" "$c.nat.range.capacity == 5000 and $c.nat.range.used == 5000"
jq_true "$out.all" "$c.nat.range.counted_by == \"dump filtered in the kernel: 5000 entries sent\""
echo "ok range taken by 5000 of $fill entries"
echo "PASS clash bigtable ($NATBPF_EXPECT_PATH)"

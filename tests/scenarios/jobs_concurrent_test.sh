#!/usr/bin/env bash
# trace, clash and drops at once in one namespace, with a user's own
# trace-everything rule present: each job sees what it is for and only that.
# 3 datagrams to udp 9999 meet a drop rule: trace tells those 3 packets (and
# no packet of the 2 to udp 8888, which pass), drops counts exactly 3 under
# the rule, clash reports no clash. All three exit cleanly and leave no
# table and no BPF link behind.
source "$(dirname "$0")/lib.sh"
command -v socat >/dev/null || fail "socat is not installed (scripts/setup.sh installs it)"
command -v bpftool >/dev/null || fail "bpftool is needed to count BPF links (scripts/setup.sh installs it)"

ns=$(scen_netns jobs) || fail "cannot create a namespace"
scen_conntrack_on "$ns"
ip netns exec "$ns" nft -f - <<'NFT' || fail "cannot load the rules"
table inet usertrace {
	chain out { type filter hook output priority -10; policy accept; meta nftrace set 1; }
}
table inet filter {
	chain output {
		type filter hook output priority filter; policy accept;
		udp dport 9999 counter drop
	}
}
NFT
links_before=$(bpftool link list | grep -c '^[0-9]')
scen_bg $NATBPF trace --netns "$ns" --dport 9999 --json --duration 600 --ready-file "$SCEN_TMP/trace.ready" >"$SCEN_TMP/trace.json" 2>"$SCEN_TMP/trace.err"
trace=$!
scen_bg $NATBPF clash --netns "$ns" --json --duration 600 --ready-file "$SCEN_TMP/clash.ready" >"$SCEN_TMP/clash.json" 2>"$SCEN_TMP/clash.err"
clash=$!
scen_bg $NATBPF drops --netns "$ns" --json --duration 600 --ready-file "$SCEN_TMP/drops.ready" >"$SCEN_TMP/drops.json" 2>"$SCEN_TMP/drops.err"
drops=$!
for job in trace clash drops; do
	scen_wait_file "$SCEN_TMP/$job.ready" 900 || { cat "$SCEN_TMP/$job.err"; fail "natbpf $job did not get ready"; }
done
for _ in 1 2 3; do echo x | ip netns exec "$ns" socat -u - UDP-SENDTO:127.0.0.1:9999 2>/dev/null; done
scen_bg ip netns exec "$ns" socat -u UDP-RECV:8888 - >/dev/null 2>&1  # cleanup stops it (it outlives its namespace otherwise)
sleep 0.3
for _ in 1 2; do echo x | ip netns exec "$ns" socat -u - UDP-SENDTO:127.0.0.1:8888 2>/dev/null; done
sleep 2 # the last records reach natbpf; then each job is stopped as a user would
for job in trace clash drops; do kill -INT "${!job}"; done
for job in trace clash drops; do
	wait "${!job}" || { cat "$SCEN_TMP/$job.err"; fail "natbpf $job exited $?"; }
done

jq -s . "$SCEN_TMP/trace.json" >"$SCEN_TMP/trace.all" || fail "trace output is not JSON lines"
jq -c '.[] | select(.type == "packet") | {n: .number, dport: .packet.dport, fate, join}' "$SCEN_TMP/trace.all" >&2
jq_true "$SCEN_TMP/trace.all" '[.[] | select(.type == "packet")] | length == 3 and all(.packet.dport == 9999 and .fate == "dropped")' \
	"trace must tell the 3 dropped datagrams and nothing else"
jq -s . "$SCEN_TMP/drops.json" >"$SCEN_TMP/drops.all" || fail "drops output is not JSON lines"
jq_true "$SCEN_TMP/drops.all" '[.[] | select(.type == "drop_cause" and .layer == "netfilter")] | length == 1 and .[0].count == 3 and (.[0].rules[0].rule | test("udp dport 9999"))' \
	"drops must count the 3 drops under the rule"
jq -s . "$SCEN_TMP/clash.json" >"$SCEN_TMP/clash.all" || fail "clash output is not JSON lines"
jq_true "$SCEN_TMP/clash.all" '[.[] | select(.type == "clash")] | length == 0' "clash must report no clash"
# The kernel removes an owned table when its socket is released, just after exit.
for _ in $(seq 50); do
	ip netns exec "$ns" nft list tables | grep -qE "natbpf_[0-9]+" || break
	sleep 0.1
done
ip netns exec "$ns" nft list tables | grep -qE "natbpf_[0-9]+" && fail "a natbpf table was left behind"
links_after=$(bpftool link list | grep -c '^[0-9]')
[ "$links_after" -le "$links_before" ] || fail "BPF links left attached ($links_before before, $links_after after)"
echo "PASS jobs concurrent"

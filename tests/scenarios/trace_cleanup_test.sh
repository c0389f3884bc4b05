#!/usr/bin/env bash
# No trace table is left after SIGINT, SIGTERM or SIGKILL of natbpf trace
# (the owner flag makes the kernel remove it with natbpf's socket), and no
# BPF links stay attached.
source "$(dirname "$0")/lib.sh"

ns=$(scen_netns cleanup) || fail "cannot create a namespace"
links_before=$(bpftool link list 2>/dev/null | grep -c '^[0-9]')

for sig in INT TERM KILL; do
	ready=$SCEN_TMP/ready-$sig
	$NATBPF trace --netns "$ns" --dport 1222 --ready-file "$ready" >"$SCEN_TMP/out-$sig" 2>&1 &
	pid=$!
	scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/out-$sig"; fail "natbpf did not get ready ($sig)"; }
	ip netns exec "$ns" nft list tables | grep -q "natbpf_$pid" || fail "trace table natbpf_$pid missing while running"
	kill -$sig $pid
	wait $pid 2>/dev/null
	rc=$?
	case $sig in
	INT | TERM) [ $rc -eq 0 ] || fail "natbpf exited $rc after SIG$sig, expected a clean exit" ;;
	esac
	for _ in $(seq 50); do
		ip netns exec "$ns" nft list tables | grep -q natbpf_ || break
		sleep 0.1
	done
	ip netns exec "$ns" nft list tables | grep -q natbpf_ && fail "trace table left behind after SIG$sig"
	[ "$sig" = KILL ] || [ ! -e "$ready" ] || fail "ready file left behind after SIG$sig"
done
links_after=$(bpftool link list 2>/dev/null | grep -c '^[0-9]')
[ "$links_after" -le "$links_before" ] || fail "BPF links left attached ($links_before before, $links_after after)"
echo "PASS trace cleanup"

#!/usr/bin/env bash
# No trace table is left after SIGINT, SIGTERM or SIGKILL of natbpf trace
# (the owner flag makes the kernel remove it with natbpf's socket), no BPF
# links stay attached, and natbpf's iptables-legacy raw rules and nf_log are given
# back (after SIGKILL, by the next run).
source "$(dirname "$0")/lib.sh"

ns=$(scen_netns cleanup) || fail "cannot create a namespace"
# Without bpftool the link count would read 0 before and after: no check at all.
command -v bpftool >/dev/null || fail "bpftool is needed to count BPF links (scripts/setup.sh installs it)"
bpftool link list >/dev/null || fail "bpftool link list failed"
links_before=$(bpftool link list | grep -c '^[0-9]')

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

# A trace table of a run that is gone (a kernel without the owner flag,
# after SIGKILL) is removed at the next start, found by a table dump; tables
# of a live process and a user's tables whose names only look like natbpf's
# stay.
sh -c 'exit 0' &
dead=$!
wait $dead
kill -0 $dead 2>/dev/null && fail "pid $dead is alive again: cannot stand for a dead run"
for t in "natbpf_$dead" "natbpf_$$" natbpf_${dead}x mynatbpf_$dead; do
	ip netns exec "$ns" nft add table inet "$t" || fail "cannot add table inet $t"
done
ready=$SCEN_TMP/ready-stale
$NATBPF trace --netns "$ns" --dport 1222 --ready-file "$ready" >"$SCEN_TMP/out-stale" 2>&1 &
pid=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/out-stale"; fail "natbpf did not get ready (stale table)"; }
tables=$(ip netns exec "$ns" nft list tables inet)
kill -INT $pid
wait $pid || fail "natbpf exited $? after SIGINT (stale table)"
grep -qx "table inet natbpf_$dead" <<<"$tables" && fail "the dead run's table natbpf_$dead was not removed"
for t in "natbpf_$$" natbpf_${dead}x mynatbpf_$dead "natbpf_$pid"; do
	grep -qx "table inet $t" <<<"$tables" || fail "table inet $t is gone: natbpf removed a table not left by a dead run"
done
for t in "natbpf_$$" natbpf_${dead}x mynatbpf_$dead; do ip netns exec "$ns" nft delete table inet "$t"; done

# iptables-legacy tracing: our raw rule and the nf_log setting it changes are
# given back after SIGINT and SIGTERM; after SIGKILL the next run removes
# the dead run's rule and restores the user's nf_log value, which natbpf
# kept in /run/natbpf (the sysctl itself then still reads nfnetlink_log).
command -v iptables-legacy >/dev/null || fail "iptables-legacy is not installed (scripts/setup.sh installs it)"
lns=$(scen_netns legacyclean) || fail "cannot create a namespace"
ip netns exec "$lns" iptables-legacy -A INPUT -p tcp --dport 1222 -j ACCEPT || fail "cannot add a legacy rule"
nf_log() { ip netns exec "$lns" cat /proc/sys/net/netfilter/nf_log/2; }
trace_rules() { ip netns exec "$lns" iptables-legacy-save -t raw | grep '^-A ' | grep -cE -- "--comment ${1:-natbpf_}"; }
ip netns exec "$lns" sh -c 'echo NONE >/proc/sys/net/netfilter/nf_log/2' || fail "cannot set nf_log"
[ "$(nf_log)" = NONE ] || fail "nf_log/2 reads $(nf_log), not NONE"
for sig in INT TERM KILL; do
	ready=$SCEN_TMP/legacy-ready-$sig
	$NATBPF trace --netns "$lns" --dport 1222 --ready-file "$ready" >"$SCEN_TMP/legacy-$sig" 2>&1 &
	pid=$!
	scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/legacy-$sig"; fail "natbpf did not get ready (legacy, $sig)"; }
	[ "$(trace_rules)" -ge 1 ] || fail "no raw rule of natbpf while tracing ($sig)"
	[ "$(nf_log)" = nfnetlink_log ] || fail "nf_log/2 reads $(nf_log) while tracing ($sig)"
	kill -$sig $pid
	wait $pid 2>/dev/null
	if [ $sig = KILL ]; then
		[ "$(nf_log)" = nfnetlink_log ] || fail "after SIGKILL nf_log/2 should still read natbpf's value"
		killed=$pid
		ready=$SCEN_TMP/legacy-ready-after
		$NATBPF trace --netns "$lns" --dport 1222 --ready-file "$ready" >"$SCEN_TMP/legacy-after" 2>&1 &
		pid=$!
		scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/legacy-after"; fail "natbpf did not get ready after a SIGKILL"; }
		[ "$(trace_rules "natbpf_$killed( |$)")" -eq 0 ] || fail "the killed run's raw rules were not removed"
		[ "$(trace_rules "natbpf_$pid( |$)")" -ge 1 ] || fail "the new run installed no raw rule"
		kill -INT $pid
		wait $pid || fail "natbpf exited $? after SIGINT"
	fi
	[ "$(trace_rules)" -eq 0 ] || fail "raw rule of natbpf left behind after SIG$sig"
	[ "$(nf_log)" = NONE ] || fail "nf_log/2 not restored after SIG$sig: it reads $(nf_log)"
done
ino=$(ip netns exec "$lns" stat -L -c %i /proc/self/ns/net)
[ ! -e "/run/natbpf/nf_log.$ino.2" ] || fail "nf_log state of the namespace left in /run/natbpf"

# A run SIGKILLed in a namespace that is then deleted leaves its kept value
# behind; the next run anywhere removes it (a new namespace may be given the
# same inode number, and must not get a value that was never its own).
dns=$(scen_netns legacydead) || fail "cannot create a namespace"
ip netns exec "$dns" iptables-legacy -A INPUT -p tcp --dport 1222 -j ACCEPT || fail "cannot add a legacy rule"
dino=$(ip netns exec "$dns" stat -L -c %i /proc/self/ns/net)
ready=$SCEN_TMP/dead-ready
$NATBPF trace --netns "$dns" --dport 1222 --ready-file "$ready" >"$SCEN_TMP/dead.out" 2>&1 &
pid=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/dead.out"; fail "natbpf did not get ready (namespace to delete)"; }
kill -KILL $pid
wait $pid 2>/dev/null
ls /run/natbpf/*".$dino."* >/dev/null 2>&1 || fail "the killed run kept no state for its namespace"
ip netns del "$dns"
# (The ready file and the output must be two files: when they were one, the
# shell's redirection created the "ready file" at once, SIGINT came before
# natbpf blocked it, and a background job of a script ignores SIGINT.)
ready=$SCEN_TMP/next-ready
$NATBPF trace --netns "$lns" --dport 1222 --ready-file "$ready" >"$SCEN_TMP/next.out" 2>&1 &
pid=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/next.out"; fail "natbpf did not get ready after a run in a deleted namespace"; }
kill -INT $pid
wait $pid || fail "natbpf exited $? after SIGINT"
! ls /run/natbpf/*".$dino."* >/dev/null 2>&1 || fail "the deleted namespace's kept state is still in /run/natbpf: $(ls /run/natbpf)"

links_after=$(bpftool link list | grep -c '^[0-9]')
[ "$links_after" -le "$links_before" ] || fail "BPF links left attached ($links_before before, $links_after after)"
echo "PASS trace cleanup"

#!/usr/bin/env bash
# `natbpf trace` on a Kubernetes node's worth of rules: the seed 003 incident
# (NodePort 52000 of demo/web, no local endpoints, its SYNs dropped; a host
# service listens on 52000) inside the kube-proxy-shaped ruleset of
# scripts/scenarios/kubeproxy.sh, for each backend and size. Per row: natbpf
# trace --netns NODE --dport 52000 --json --duration D --ready-file F starts;
# two connection attempts to 52000 are made once it is ready (each a SYN and
# its retransmission: 2 s connect timeout), and natbpf stops by itself.
#
# Columns: backend, rules (the ruleset's rule lines), ready_ms (exec -> ready
# file), cpu_pct (utime+stime of natbpf over exec -> exit, % of one core),
# rss_kb (VmHWM), stories (JSON lines of type packet), dropped_syns (SYNs the
# client sent: each was dropped), right_rule (every story of a dropped SYN
# names the drop rule: iptables KUBE-FIREWALL's mark 0x8000 DROP, nft the
# vmap @no-endpoint-nodeports rule of nodeport-endpoints-check), then
# cpu_tracing_pct (the same CPU over ready -> exit only) and setup_ms (building
# the namespaces and loading the ruleset). /proc/PID is sampled every 50 ms;
# the last sample before exit is "the end". Targets (the issue): ready <
# 250 ms, < 5% of a core while tracing, RSS < 40 MB, stories == dropped_syns.
#
# Usage: bench/nodesize.sh [BUILD_DIR]   (as root; default build)
# Env:   NODESIZE_RULES="2000 20000 100000"  sizes, in rules (services chosen
#        per backend by kubeproxy_services; iptables 11 rules/service, nft 8)
#        NODESIZE_BACKENDS="iptables-legacy iptables-nft nft"
#        NODESIZE_DURATION=10   natbpf's --duration, seconds
#        NODESIZE_SETUP_MAX=180 a backend whose setup takes longer is not run
#                               at larger sizes (its row says setup>Ns)
#        NODESIZE_READY_MAX=120 seconds to wait for natbpf to get ready
#        NODESIZE_KEEP=DIR      keep natbpf's JSON output there (BACKEND-RULES.jsonl)
# Everything runs in namespaces this script creates and deletes.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
natbpf=$build/natbpf
sizes=${NODESIZE_RULES:-2000 20000 100000}
backends=${NODESIZE_BACKENDS:-iptables-legacy iptables-nft nft}
duration=${NODESIZE_DURATION:-10}
setup_max=${NODESIZE_SETUP_MAX:-180}
ready_max=${NODESIZE_READY_MAX:-120}
[ -x "$natbpf" ] || { echo "nodesize: $natbpf is missing: build it first" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "nodesize: needs root (namespaces, BPF)" >&2; exit 1; }
source "$here/scripts/scenarios/seed003.sh"
source "$here/scripts/scenarios/kubeproxy.sh"
built="$(date -u -r "$natbpf" +%Y-%m-%dT%H:%MZ) sha256 $(sha256sum "$natbpf" | cut -c1-12)"

p=nbsz$$ # interfaces ${p}c, ${p}n: 15 characters at most
tmp=$(mktemp -d /tmp/natbpf-nodesize.XXXXXX)
cp "$natbpf" "$tmp/natbpf" # every row measures the same binary, even if build/ is rebuilt meanwhile
natbpf=$tmp/natbpf
pids=()
cleanup() {
	# Every step, whatever the one before returned: under set -e a failed
	# kill or wait (a process already gone) ended the trap before the
	# namespaces were deleted, and left them on the machine.
	set +e
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
	pids=()
	ip netns del "$p-client" 2>/dev/null
	ip netns del "$p-node" 2>/dev/null
}
trap 'cleanup; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
hz=$(getconf CLK_TCK)
# The loops below fork nothing (a fork every few ms would take CPU from
# natbpf on a 2-core machine): the clock is EPOCHREALTIME, pauses are read
# timeouts on a pipe nobody writes, /proc is read with builtins.
exec {pause_fd}<> <(:)
pause() { read -r -t "$1" -u "$pause_fd" _; }
now() { NOW=$((${EPOCHREALTIME//[.,]/} * 1000)); } # ns, in NOW
sample() {                                        # PID -> CPU (ticks), HWM (kB); 1 when gone
	local f k v _
	read -r -a f 2>/dev/null <"/proc/$1/stat" || return 1
	[ "${#f[@]}" -gt 14 ] || return 1 # after "(comm)", which has no spaces here
	CPU=$((f[13] + f[14]))
	while read -r k v _; do [ "$k" = VmHWM: ] && HWM=$v; done 2>/dev/null <"/proc/$1/status"
	return 0
}

# right_rule FILE BACKEND: yes when at least one story is of a dropped SYN
# to 52000 and every such story names the drop rule.
right_rule() {
	local sel='select(.type == "packet" and .verdict == "drop" and .packet.dport == 52000)' ok
	if [ "$2" = nft ]; then
		ok='.drop.chain == "nodeport-endpoints-check" and (.drop.rule // "" | contains("vmap @no-endpoint-nodeports"))'
	else
		ok='.drop.chain == "KUBE-FIREWALL" and (.drop.rule // "" | contains("--mark 0x8000/0x8000 -j DROP"))'
	fi
	jq -s "[.[] | $sel] | length > 0 and all($ok)" "$1" 2>/dev/null | grep -q true && echo yes || echo no
}

one() { # BACKEND RULES -> a row; 1 when setup took longer than setup_max
	local backend=$1 rules=$2 mode=iptables n count t0 setup_ms rc
	[ "$backend" = nft ] && mode=nft
	n=$(kubeproxy_services "$rules" "$mode")
	count=$(kubeproxy_rules "$n" "$mode" | grep -cE '^(-A|add rule) ')
	now; t0=$NOW
	timeout "$setup_max" bash -c 'source "$1"; source "$2"; kubeproxy_up "$3" "$4" "$5"' _ \
		"$here/scripts/scenarios/seed003.sh" "$here/scripts/scenarios/kubeproxy.sh" "$p" "$n" "$backend" \
		>"$tmp/up.out" 2>&1
	rc=$?
	now; setup_ms=$(((NOW - t0) / 1000000))
	echo "# $backend: $n services, $count rules, setup $setup_ms ms" >&2
	if [ $rc -eq 124 ]; then
		echo "$backend $count - - - - - - - setup>${setup_max}s"
		cleanup
		return 1
	fi
	[ $rc -eq 0 ] || { cat "$tmp/up.out" >&2; echo "nodesize: kubeproxy_up $backend $n failed" >&2; exit 1; }
	seed003_listen "$p" $((duration + ready_max + 10)) &
	pids+=($!)
	local out=$tmp/$backend-$rules.jsonl ready=$tmp/ready pid t_ready t_end cpu_ready cpu_end=0 hwm=0 deadline
	rm -f "$ready"
	now; t0=$NOW
	"$natbpf" trace --netns "$p-node" --dport 52000 --json --duration "$duration" --ready-file "$ready" \
		>"$out" 2>"$tmp/err" &
	pid=$!
	pids+=("$pid")
	deadline=$((t0 + ready_max * 1000000000))
	until [ -e "$ready" ]; do
		now
		if ! kill -0 "$pid" 2>/dev/null || [ "$NOW" -gt "$deadline" ]; then
			echo "$backend $count not-ready - - - - - - $setup_ms"
			sed 's/^/# natbpf: /' "$tmp/err" | tail -5 >&2
			cleanup
			return 0
		fi
		pause 0.002
	done
	now; t_ready=$NOW
	sample "$pid" && cpu_ready=$CPU
	local syns0 conn
	syns0=$(kubeproxy_syns_sent "$p")
	# Two attempts a second apart, in the background so that sampling goes on.
	(sleep 1; seed003_connect "$p" 52000; sleep 1; seed003_connect "$p" 52000) &
	conn=$!
	pids+=("$conn")
	t_end=$t_ready
	while sample "$pid"; do
		cpu_end=$CPU hwm=$HWM
		now; t_end=$NOW
		pause 0.05
	done
	wait "$pid" || echo "# natbpf exited $?: $(tail -1 "$tmp/err")" >&2
	wait "$conn" 2>/dev/null
	local syns=$(($(kubeproxy_syns_sent "$p") - syns0)) stories
	stories=$(jq -c 'select(.type == "packet")' "$out" 2>/dev/null | wc -l)
	awk -v b="$backend" -v r="$count" -v t0="$t0" -v tr="$t_ready" -v te="$t_end" -v cr="$cpu_ready" \
		-v ce="$cpu_end" -v hz="$hz" -v rss="$hwm" -v st="$stories" -v sy="$syns" \
		-v ok="$(right_rule "$out" "$backend")" -v su="$setup_ms" 'BEGIN {
		printf "%s %d %d %.1f %d %d %d %s %.1f %d\n", b, r, (tr - t0) / 1e6,
			100 * ce / hz / ((te - t0) / 1e9), rss, st, sy, ok,
			100 * (ce - cr) / hz / ((te - tr) / 1e9), su
	}'
	[ -z "${NODESIZE_KEEP:-}" ] || cp "$out" "$NODESIZE_KEEP/$backend-$rules.jsonl"
	cleanup
}

echo "# natbpf built $built (tree $(git -C "$here" describe --always --dirty 2>/dev/null)), $(uname -r), $(nproc) cores, --duration $duration"
echo "# backend rules ready_ms cpu_pct rss_kb stories dropped_syns right_rule cpu_tracing_pct setup_ms"
for backend in $backends; do
	for rules in $sizes; do
		one "$backend" "$rules" || break
	done
done

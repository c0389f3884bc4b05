#!/usr/bin/env bash
# Kernel-side cost of natbpf, as packets per second a sender in a namespace
# pushes with natbpf (or a peer) running, against the same sender without it
# in the same round:
#  - drop flood: UDP into an nftables drop rule, so a kfree_skb program runs
#    for every packet (the worst case for `natbpf drops`);
#  - conntrack drop flood: the same in a namespace that tracks connections,
#    so each dropped packet carries an unconfirmed entry (what `clash` checks);
#  - forwarded flood: UDP through a veth pair into a router namespace that
#    DNATs it (port 80 -> 10.78.0.9:8080) and forwards it through a second
#    veth pair to a server namespace where bench/udpsink receives it:
#    conntrack and NAT on every packet, no drop by design.
# Each row is ROUNDS rounds; a round floods once without the row's program
# and once with it (started afresh, ready before the flood), in alternating
# order (odd rounds baseline first, even rounds the row first), so a slow
# spell of this shared machine hits both sides of a round. The row's figure
# is the median of the rounds' ratios, printed with their spread: the middle
# half of them (25th to 75th percentile). The
# sender is pinned to CPU 1 (a migration mid-flood is noise, not cost).
# Peers: `floor`, an empty tp_btf program on kfree_skb (bench/kfree_floor:
# the cost of being called for each drop at all, whatever a program does);
# `nftrace-key`, one `meta nftrace set 1` rule in a chain no hook calls, in
# another namespace (bench/topology.sh's server namespace): the price every
# nftables chain on the host pays once any nftrace rule exists, which
# `trace` (and every nftables trace tool) pays too; `floor-nftrace-key`, both
# at once: the cheapest a trace tool built on kfree_skb and nftables trace
# can be;
# what users run instead: `nft monitor trace` with a trace-everything rule
# (meta nftrace set 1 in prerouting and output of the namespace the packets
# cross); iptables TRACE with nfnetlink_log (iptables-legacy -j TRACE in raw
# PREROUTING and OUTPUT, the namespace's IPv4 nf_log bound to nfnetlink_log,
# `tcpdump -i nflog:0` listening); a bpftrace one-liner counting
# skb:kfree_skb by reason. `trace` waits for its first packet with the
# trace key off (the hold); `trace-no-hold` is trace with --no-hold, tracing
# from the start (the key on). `drops-prometheus-scraped`: the exporter (drops
# --prometheus) while curl scrapes /metrics every second.
# Prints per row: label, median packets/s with it, median baseline packets/s
# of its rounds, ratio median, 25th and 75th percentile (%), natbpf's peak RSS (VmHWM, kB,
# the largest of its rounds; - for peers).
# Usage: [OVERHEAD_ROWS="trace clash-conntrack ..."] [OVERHEAD_ROUNDS=N]
#        [OVERHEAD_TARGET_ROUNDS=N] [OVERHEAD_SETTLE=S] bench/overhead.sh [BUILD_DIR] [PACKETS]
# OVERHEAD_ROWS: measure only these rows (labels as printed), e.g. for an
# A/B of one change; default: every row. OVERHEAD_ROUNDS: default 9;
# OVERHEAD_TARGET_ROUNDS: rounds of the rows natbpf's targets are judged by
# (trace, clash and their table's floor), default 21: at 9 rounds their
# spread here is about 3 points, as wide as the margin to a target.
# OVERHEAD_SETTLE: seconds, default 0.5.
set -euo pipefail
build=${1:-build}
count=${2:-300000}
rounds=${OVERHEAD_ROUNDS:-9}
target_rounds=${OVERHEAD_TARGET_ROUNDS:-21}
target_rows=" trace trace-table clash-conntrack trace-forward trace-table-forward "
# Seconds between a start (ready) or a stop and the next flood: attaching,
# detaching and a table's creation or deletion leave the kernel work to do
# for a moment after (RCU callbacks, freeing), which a flood right after
# ready measured as up to 10 % of the forwarded rate. Start-up is measured
# by bench/startup.sh; this is the cost while the program runs.
settle=${OVERHEAD_SETTLE:-0.5}
natbpf=$build/natbpf
flood=$build/udpflood
floor=$build/kfree_floor
source "$(dirname "$0")/topology.sh"
cleanup() {
	# Every step, whatever the one before returned: under set -e a failed
	# kill or wait (a process already gone) ended the trap before the
	# namespaces were deleted, and left them on the machine.
	set +e
	pkill -TERM -f "^tcpdump -i nflog:0"
	pkill -TERM -f "^nft monitor trace"
	pkill -INT -x bpftrace
	[ -n "${pid:-}" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[ -n "${sink:-}" ] && kill "$sink" 2>/dev/null && wait "$sink" 2>/dev/null
	[ -n "${scraper:-}" ] && kill "$scraper" 2>/dev/null
	bench_topology_down
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bench_topology_up nbbench$$

flood_once() { # NS ADDR PORT
	ip netns exec "$1" taskset -c 1 "$flood" "$2" "$3" "$count"
}

# NS: turns on nf_tables' trace static key (nft_trace_enabled) and nothing
# else: the rule sits in a chain without a hook, so no packet meets it.
nftrace_key_add() {
	ip netns exec "$1" nft 'add table inet nbkey; add chain inet nbkey unhooked; add rule inet nbkey unhooked meta nftrace set 1'
}

# Starts the row's program (KIND ARGS...; a peer's ARGS: the namespace its
# rules go in), waits until it is ready and sets pid (natbpf or the peer's
# listener).
start_row() {
	local kind=$1 ready
	shift
	ready=$(mktemp -u)
	pid=""
	peer_ns=${1:-}
	case $kind in
	floor) "$floor" "$build/kfree_floor.bpf.o" "$ready" >/dev/null 2>&1 & ;;
	nftrace-key)
		nftrace_key_add "$peer_ns"
		touch "$ready"
		pid=- # no process
		;;
	floor-nftrace-key)
		nftrace_key_add "$peer_ns"
		"$floor" "$build/kfree_floor.bpf.o" "$ready" >/dev/null 2>&1 &
		;;
	trace-table)
		# natbpf trace's own table while idle, made by hand, without natbpf:
		# the floor of its design. The marking rules end in accept where
		# natbpf queues (no packet of a flood matches them either way).
		ip netns exec "$peer_ns" nft -f - <<'NFT'
table inet nbtable {
	chain mark_pre { type filter hook prerouting priority -200000; th dport 5353 meta l4proto { tcp, udp, dccp, sctp } limit rate 10/second accept; }
	chain mark_out { type filter hook output priority -200000; th dport 5353 meta l4proto { tcp, udp, dccp, sctp } limit rate 10/second accept; }
	chain fate_out { type filter hook postrouting priority 2147483647; }
	chain fate_in { type filter hook input priority 2147483647; }
}
NFT
		touch "$ready"
		pid=- # no process
		;;
	nft-monitor)
		# A trace-everything rule and the listener users run by hand.
		ip netns exec "$peer_ns" nft -f - <<'NFT'
table inet nbpeer {
	chain pre { type filter hook prerouting priority -300; meta nftrace set 1; }
	chain out { type filter hook output priority -300; meta nftrace set 1; }
}
NFT
		ip netns exec "$peer_ns" nft monitor trace >/dev/null 2>&1 &
		(sleep 0.5 && touch "$ready") &
		;;
	iptables-trace)
		# The legacy TRACE target logs through nf_log; bound to
		# nfnetlink_log, every rule a packet meets is a netlink message to
		# group 0, which tcpdump's nflog interface reads.
		ip netns exec "$peer_ns" sysctl -qw net.netfilter.nf_log.2=nfnetlink_log
		ip netns exec "$peer_ns" iptables-legacy -t raw -A PREROUTING -j TRACE
		ip netns exec "$peer_ns" iptables-legacy -t raw -A OUTPUT -j TRACE
		ip netns exec "$peer_ns" tcpdump -i nflog:0 -w /dev/null 2>&1 |
			while read -r line; do case $line in *listening*) touch "$ready" ;; esac; done &
		;;
	bpftrace)
		mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
		bpftrace -e 'tracepoint:skb:kfree_skb { @[args->reason] = count(); }' 2>/dev/null |
			while read -r line; do case $line in Attaching*) touch "$ready" ;; esac; done &
		;;
	scraped)
		# The exporter, scraped every second (Prometheus' default is 15-60 s).
		"$natbpf" "$@" --ready-file "$ready" >/dev/null 2>&1 &
		pid=$!
		(while sleep 1; do curl -s -o /dev/null "http://$scrape_at/metrics"; done) &
		scraper=$!
		;;
	natbpf) "$natbpf" "$@" --ready-file "$ready" >/dev/null 2>&1 & ;;
	esac
	[ -n "$pid" ] || pid=$!
	for _ in $(seq 300); do [ -e "$ready" ] && break; sleep 0.1; done
	[ -e "$ready" ] || { echo "$label: did not get ready" >&2; exit 1; }
	rm -f "$ready"
}

stop_row() { # KIND
	case $1 in
	nftrace-key | floor-nftrace-key) ip netns exec "$peer_ns" nft delete table inet nbkey ;;
	trace-table) ip netns exec "$peer_ns" nft delete table inet nbtable ;;
	nft-monitor)
		pkill -TERM -f "^nft monitor trace" || true # background jobs of a script ignore SIGINT
		ip netns exec "$peer_ns" nft delete table inet nbpeer
		;;
	iptables-trace)
		pkill -TERM -f "^tcpdump -i nflog:0" || true
		ip netns exec "$peer_ns" iptables-legacy -t raw -F
		ip netns exec "$peer_ns" sysctl -qw net.netfilter.nf_log.2=NONE
		;;
	bpftrace) pkill -INT -x bpftrace || true ;;
	esac
	[ -z "${scraper:-}" ] || { kill "$scraper" 2>/dev/null; wait "$scraper" 2>/dev/null || true; scraper=""; }
	if [ "$pid" != - ]; then
		kill -INT "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	pid=""
}

# LABEL NS ADDR PORT KIND ARGS...: ROUNDS paired rounds, one output line.
with() {
	label=$1
	local target=$2 addr=$3 port=$4 kind=$5 r n=$rounds base row rss=0 hwm pairs=""
	shift 4
	[ -z "${OVERHEAD_ROWS:-}" ] || [[ " $OVERHEAD_ROWS " == *" $label "* ]] || return 0
	[[ $target_rows != *" $label "* ]] || n=$target_rounds
	for r in $(seq "$n"); do
		[ $((r % 2)) = 0 ] || base=$(flood_once "$target" "$addr" "$port")
		start_row "$@"
		sleep "$settle"
		row=$(flood_once "$target" "$addr" "$port")
		hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
		case $kind in natbpf | scraped) [ "${hwm:-0}" -le "$rss" ] || rss=$hwm ;; esac
		stop_row "$kind"
		sleep "$settle"
		[ $((r % 2)) = 1 ] || base=$(flood_once "$target" "$addr" "$port")
		pairs+="$base $row"$'\n'
	done
	awk -v l="$label" -v rss="$rss" '
		NF == 2 { n++; b[n] = $1; w[n] = $2; q[n] = 100 * $2 / $1 }
		function sorted(a, c,   i, j, t) { # a copy of a[1..n] into c, in order
			for (i = 1; i <= n; i++) c[i] = a[i]
			for (i = 2; i <= n; i++) for (j = i; j > 1 && c[j-1] > c[j]; j--) { t = c[j]; c[j] = c[j-1]; c[j-1] = t }
		}
		END {
			sorted(w, sw); sorted(b, sb); sorted(q, sq)
			m = int((n + 1) / 2)
			k = int((n + 3) / 4) # the middle half of the ratios: quartiles by rank
			printf "%s %d %d %.1f %.1f %.1f %s\n", l, sw[m], sb[m], sq[m], sq[k], sq[n + 1 - k], rss ? rss : "-"
		}' <<<"$pairs"
}
with floor "$ns" 127.0.0.1 9 floor
with nftrace-key "$ns" 127.0.0.1 9 nftrace-key "$fws"
with floor-nftrace-key "$ns" 127.0.0.1 9 floor-nftrace-key "$fws"
with drops "$ns" 127.0.0.1 9 natbpf drops --duration 600s
scrape_at=127.0.0.1:$((20000 + $$ % 20000))
with drops-prometheus-scraped "$ns" 127.0.0.1 9 scraped drops --prometheus "$scrape_at"
with trace "$ns" 127.0.0.1 9 natbpf trace --netns "$ns" --dport 5353 --duration 600s
with trace-no-hold "$ns" 127.0.0.1 9 natbpf trace --netns "$ns" --dport 5353 --no-hold --duration 600s
with trace-table "$ns" 127.0.0.1 9 trace-table "$ns"
with nft-monitor-trace "$ns" 127.0.0.1 9 nft-monitor "$ns"
with bpftrace-kfree_skb "$ns" 127.0.0.1 9 bpftrace
# Last in its namespace: a legacy table, once there, stays registered (its
# chains emptied) until the namespace goes; the rounds pair it either way.
with iptables-trace-nflog "$ns" 127.0.0.1 9 iptables-trace "$ns"
with clash-conntrack "$ctns" 127.0.0.1 9 natbpf clash --netns "$ctns" --duration 600s
ip netns exec "$fws" "$build/udpsink" 8080 >/dev/null &
sink=$!
with drops-forward "$fwc" 10.77.0.1 80 natbpf drops --duration 600s
with nftrace-key-forward "$fwc" 10.77.0.1 80 nftrace-key "$fws"
with floor-nftrace-key-forward "$fwc" 10.77.0.1 80 floor-nftrace-key "$fws"
with trace-forward "$fwc" 10.77.0.1 80 natbpf trace --netns "$fwr" --dport 5353 --duration 600s
with trace-no-hold-forward "$fwc" 10.77.0.1 80 natbpf trace --netns "$fwr" --dport 5353 --no-hold --duration 600s
with trace-table-forward "$fwc" 10.77.0.1 80 trace-table "$fwr"
with clash-forward "$fwc" 10.77.0.1 80 natbpf clash --netns "$fwr" --duration 600s
with nft-monitor-trace-forward "$fwc" 10.77.0.1 80 nft-monitor "$fwr"
with bpftrace-kfree_skb-forward "$fwc" 10.77.0.1 80 bpftrace
with iptables-trace-nflog-forward "$fwc" 10.77.0.1 80 iptables-trace "$fwr"

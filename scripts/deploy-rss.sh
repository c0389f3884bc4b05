#!/usr/bin/env bash
# Peak RSS of `natbpf drops`, the figure deploy/daemonset.yaml's memory
# request and limit rest on. Three runs of --duration D (default 20s), each
# under /usr/bin/time -v ("Maximum resident set size"):
#   idle   nothing is made to drop (whatever the host drops anyway is counted)
#   flood  a namespace of its own with an nftables drop rule on 200 UDP ports,
#          tests/tools' udpflood sending to 127.0.0.1 there for the whole run
#   node   a kube-proxy-shaped ruleset of about RULES (default 20000)
#          iptables-nft rules (scripts/scenarios/kubeproxy.sh, seed 003's
#          layout) whose KUBE-FIREWALL drops a SYN to NodePort 52000 about
#          every 2 s: the rule counters natbpf reads are that large
# Only loopback inside the namespace this script creates receives traffic.
# Usage (root): [RULES=N] scripts/deploy-rss.sh [NATBPF [DURATION]]
#   NATBPF defaults to build/natbpf; udpflood is looked for beside it, then in
#   tests/tools/bin. Prints one line per run, then a summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
natbpf=${1:-build/natbpf}
duration=${2:-20s}
rules=${RULES:-20000}

[ "$(id -u)" -eq 0 ] || { echo "deploy-rss.sh loads BPF programs: run it as root" >&2; exit 2; }
[ -x "$natbpf" ] || { echo "no natbpf at $natbpf: build it or give its path" >&2; exit 2; }
version=$("$natbpf" --version)
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (Debian package time; scripts/setup.sh installs it)" >&2; exit 2; }
flood=
for c in "$(dirname "$natbpf")/udpflood" tests/tools/bin/udpflood; do
	[ -x "$c" ] && { flood=$c; break; }
done
[ -n "$flood" ] || { echo "udpflood is missing: build the project first" >&2; exit 2; }

tmp=$(mktemp -d /tmp/natbpf-rss.XXXXXX)
ns=nbrss$$ kp=nbk$$
cleanup() {
	[ -z "${listener:-}" ] || kill "$listener" 2>/dev/null || true
	for n in "$ns" "$kp-client" "$kp-node"; do ip netns del "$n" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

idle_load() { sleep 0.5; }
flood_load() { ip netns exec "$ns" "$flood" 127.0.0.1 20000 200000 200 >/dev/null 2>&1 || true; }
node_load() { seed003_connect "$kp" "$KUBEPROXY_NODEPORT" || true; }

# Memory the kernel charges to natbpf's cgroup for its BPF maps and
# programs, in kB: the memlock of each map and program it holds a fd of.
bpf_kb() { # PID
	local f
	for f in /proc/"$1"/fdinfo/*; do
		grep -hE '^(map_id|prog_id|memlock):' "$f" 2>/dev/null | tr '\n' ' '
		echo
	done | grep memlock | sort -u | awk '{ for (i = 1; i < NF; i += 2) if ($i == "memlock:") kb += $(i + 1) / 1024 }
		END { printf "%d\n", kb }'
}

# Runs natbpf drops under time -v and calls LOAD from ready until it exits,
# sampling natbpf's own VmHWM and BPF memory between calls. Prints three
# numbers in kB: time -v's maximum RSS (natbpf or, if larger, a program it
# ran and waited for: iptables-*-save), natbpf's own VmHWM, BPF memory.
measure() { # LABEL LOAD
	local label=$1 pid np hwm=0 bpf=0 v
	/usr/bin/time -v -o "$tmp/$label.time" "$natbpf" drops --duration "$duration" \
		--ready-file "$tmp/$label.ready" >"$tmp/$label.out" 2>"$tmp/$label.err" &
	pid=$!
	for _ in $(seq 600); do [ -f "$tmp/$label.ready" ] && break; sleep 0.1; done
	[ -f "$tmp/$label.ready" ] || { cat "$tmp/$label.err" >&2; echo "natbpf did not get ready" >&2; exit 1; }
	np=$(cat "$tmp/$label.ready")
	while kill -0 "$np" 2>/dev/null; do
		v=$(awk '/^VmHWM/ {print $2}' "/proc/$np/status" 2>/dev/null) && [ -n "$v" ] && hwm=$v
		v=$(bpf_kb "$np") && [ "$v" -gt "$bpf" ] && bpf=$v
		"$2"
	done
	wait "$pid" || { cat "$tmp/$label.err" >&2; echo "natbpf drops failed ($label)" >&2; exit 1; }
	echo "$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tmp/$label.time") $hwm $bpf"
}

# LABEL "MAXRSS HWM BPF" TEXT: one line of the report; the sum is what the
# container's memory cgroup must hold at once (natbpf, the largest program
# it runs, its BPF maps), an upper bound since a child is not always running.
report() {
	local label=$1 maxrss hwm bpf
	read -r maxrss hwm bpf <<<"$2"
	sums+=($((hwm + maxrss + bpf)))
	printf '%-6s natbpf VmHWM %6d kB, with children (time -v) %6d kB, BPF maps+progs %5d kB, bound %6d kB (%d MiB); %s\n' \
		"$label:" "$hwm" "$maxrss" "$bpf" $((hwm + maxrss + bpf)) $(((hwm + maxrss + bpf) / 1024)) "$3"
}
sums=()

report idle "$(measure idle idle_load)" "nothing made to drop"

ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" nft -f - <<'NFT'
table inet filter {
	chain output {
		type filter hook output priority filter; policy accept;
		udp dport 20000-20199 counter drop
	}
}
NFT
counted() { sed -n 's/^drops in .*: \([0-9]*\) counted in the kernel.*/\1/p' "$tmp/$1.out"; }
r=$(measure flood flood_load)
[ "$(counted flood)" -gt 0 ] || { cat "$tmp/flood.out" >&2; echo "the flood run counted no drops" >&2; exit 1; }
report flood "$r" "$(counted flood) drops counted"

source scripts/scenarios/seed003.sh
source scripts/scenarios/kubeproxy.sh
services=$(kubeproxy_services "$rules" iptables)
kubeproxy_up "$kp" "$services" iptables-nft >/dev/null
seed003_listen "$kp" 600 &
listener=$!
r=$(measure node node_load)
grep -q 'KUBE-FIREWALL' "$tmp/node.out" ||
	{ cat "$tmp/node.out" >&2; echo "the node run did not name the KUBE-FIREWALL drop" >&2; exit 1; }
report node "$r" "$services services, $(ip netns exec "$kp-node" iptables-nft-save | grep -c '^-A') iptables-nft rules, $(counted node) drops counted"

max=0
for v in "${sums[@]}"; do [ "$v" -gt "$max" ] && max=$v; done
echo "largest bound ${max} kB ($((max / 1024)) MiB); drops --duration $duration, $version, kernel $(uname -r)"

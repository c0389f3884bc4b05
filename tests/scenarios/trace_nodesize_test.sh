#!/usr/bin/env bash
# Seed 003 at the size of a Kubernetes node: `natbpf trace --dport 52000` in
# a namespace holding a kube-proxy-shaped ruleset of about 20000 rules
# (scripts/scenarios/kubeproxy.sh: 1816 services, each a ClusterIP with two
# endpoints chosen by -m statistic and a NodePort), with iptables-legacy and
# iptables-nft. NodePort 52000 of demo/web has no local endpoints: its SYNs
# walk KUBE-SERVICES and KUBE-NODEPORTS to KUBE-XLB-*, are marked 0x8000 in
# KUBE-MARK-DROP and dropped by KUBE-FIREWALL. Two connection attempts; every
# SYN the client sent (each attempt retransmits once in its 2 s) must be told
# exactly once, as dropped by the KUBE-FIREWALL rule, with the mark traced to
# KUBE-MARK-DROP, reached from the "demo/web:http has no local endpoints"
# rule — what trace_seed003 asserts on five rules, here on twenty thousand.
# As in the issue: natbpf trace --duration 10, two attempts meanwhile.
# Both backends are run and reported before the verdict.
# Also asserted, the targets of issue 14 reached so far (measured on a busy
# 2-core machine, see the commit): iptables-legacy ready within
# READY_MS_LEGACY (250 ms; 880 ms before the legacy tables were read on a
# worker and per table) and under 5 % of a core while tracing (25 % when
# the whole ruleset was read again every second); iptables-nft and nft
# within READY_MS_NFT (500 ms; 190-440 ms measured here with the machine's
# load at 5-6, 0.56-1.7 s when natbpf's stale-table check listed every
# table through libnftables, which fills its whole cache first). Slower
# machines may raise them.
# The kube-proxy nftables backend (8 rules a service): the same NodePort's
# SYNs are dropped in filter-input -> nodeport-endpoints-check by the vmap
# @no-endpoint-nodeports; each must be told once, by that rule, and natbpf
# must use under 5 % of a core while tracing (it prints the crossed chains'
# rules itself: 6.6 % and 74 MB on 20000 rules when libnftables listed the
# whole ruleset, which a table of many sets needed).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed003.sh"
source "$(dirname "$0")/../../scripts/scenarios/kubeproxy.sh"

RULES=20000
READY_MS_LEGACY=${READY_MS_LEGACY:-250}
READY_MS_NFT=${READY_MS_NFT:-500}
CPU_PCT=5
if [ "${NATBPF_VM:-}" = 1 ]; then
	# Software emulation (the VM kernels): what is told and named is asserted
	# on the fentry and kprobe paths, on 2000 rules; times and CPU are this
	# machine's targets, not an emulator's.
	RULES=2000 READY_MS_LEGACY=60000 READY_MS_NFT=60000 CPU_PCT=101
	echo "VM: $RULES rules, ready time and CPU not asserted under emulation"
fi
problems=()
ms() { echo $((${EPOCHREALTIME//[.,]/} / 1000)); }
cpu_ticks() { local f; read -r -a f <"/proc/$1/stat" && echo $((f[13] + f[14])); } # utime + stime

# check BACKEND FILE EXPR MESSAGE: EXPR (jq, over the array of stories) holds.
check() {
	[ "$(jq -r "$3" "$2" 2>&1)" = true ] || problems+=("$1: $4")
}

run_case() { # BACKEND
	local ipt=$1 p n
	case $ipt in iptables-nft) p=nb$$kn ;; *) p=nb$$kl ;; esac
	SCEN_NS+=("$p-client" "$p-node")
	n=$(kubeproxy_services $RULES iptables)
	local t0=$SECONDS
	kubeproxy_up "$p" "$n" "$ipt" 2>"$SCEN_TMP/up.err" || fail "kubeproxy_up $ipt failed: $(cat "$SCEN_TMP/up.err")"
	echo "$ipt: $n services, $(ip netns exec "$p-node" "$ipt-save" | grep -c '^-A') rules, loaded in $((SECONDS - t0)) s"
	scen_bg seed003_listen "$p" 120
	scen_wait_listen "$p-node" 52000
	local out=$SCEN_TMP/$ipt.jsonl ready=$SCEN_TMP/$ipt.ready
	local t_start t_ready tries=6000 cpu0 cpu1 t_cpu0 t_cpu1
	t_start=$(ms)
	scen_bg $NATBPF trace --netns "$p-node" --dport 52000 --json --duration 10 --ready-file "$ready" >"$out" 2>"$SCEN_TMP/$ipt.err"
	local pid=$!
	while [ ! -e "$ready" ] && [ $((tries -= 1)) -gt 0 ]; do sleep 0.01; done
	[ -e "$ready" ] || { cat "$SCEN_TMP/$ipt.err"; fail "$ipt: natbpf trace did not get ready in 60 s"; }
	t_ready=$(ms)
	cpu0=$(cpu_ticks "$pid") t_cpu0=$(ms)
	local ready_ms=$((t_ready - t_start)) max_ready=$READY_MS_NFT
	[ "$ipt" = iptables-legacy ] && max_ready=$READY_MS_LEGACY
	echo "$ipt: natbpf ready after $ready_ms ms"
	[ "$ready_ms" -le "$max_ready" ] ||
		problems+=("$ipt: natbpf took $ready_ms ms to get ready on $RULES rules, more than the $max_ready ms reached (READY_MS_${ipt#iptables-})")
	local syns0
	syns0=$(kubeproxy_syns_sent "$p")
	sleep 1 # as someone would: start natbpf, then try the NodePort
	seed003_connect "$p" 52000 && fail "$ipt: port 52000 should be dropped by KUBE-FIREWALL"
	sleep 1 # and again
	seed003_connect "$p" 52000 && fail "$ipt: port 52000 should be dropped by KUBE-FIREWALL"
	local syns=$(($(kubeproxy_syns_sent "$p") - syns0))
	cpu1=$(cpu_ticks "$pid") t_cpu1=$(ms)
	local cpu_pct=$((100 * 1000 * (cpu1 - cpu0) / $(getconf CLK_TCK) / (t_cpu1 - t_cpu0)))
	echo "$ipt: natbpf used $cpu_pct % of a core while tracing (2 attempts, $((t_cpu1 - t_cpu0)) ms)"
	[ "$ipt" != iptables-legacy ] || [ "$cpu_pct" -lt "$CPU_PCT" ] ||
		problems+=("$ipt: natbpf used $cpu_pct % of a core while tracing on $RULES rules, $CPU_PCT % or more (the legacy tables are read again only when they change)")
	local fw
	fw=$(ip netns exec "$p-node" "$ipt-save" -c -t filter | grep -- '-A KUBE-FIREWALL .*0x8000/0x8000 -j DROP' | sed 's/^\[\([0-9]*\):.*/\1/')
	[ "$syns" -ge 2 ] && [ "$fw" = "$syns" ] ||
		fail "$ipt: the client sent $syns SYNs and KUBE-FIREWALL dropped $fw: the incident itself is broken"
	# natbpf stops by itself, 10 s after it got ready, as in the issue
	wait "$pid" || { cat "$SCEN_TMP/$ipt.err"; fail "$ipt: natbpf trace exited $?"; }

	local all=$SCEN_TMP/$ipt.stories
	jq -s '[.[] | select(.type == "packet")]' "$out" >"$all"
	echo "$ipt: $syns SYNs sent, all dropped by KUBE-FIREWALL; natbpf told $(jq length "$all") stories:"
	jq -r '.[] | "  packet \(.number) sport \(.packet.sport) \(.packet.tcp_flags) \(.verdict) in \(.drop.table // "-") \(.drop.chain // "-")"
		+ " mark_origins \(.mark_origins | length) repeat_of \(.repeat_of // "-") evidence \(.drop.evidence // [] | join(" + "))"' "$all"

	check "$ipt" "$all" "length == $syns" "$syns SYNs were sent and dropped, $(jq length "$all") stories told (each dropped SYN must be told exactly once)"
	check "$ipt" "$all" '[.[] | .packet.sport] | unique | length == 2' "the stories should be of the two connection attempts"
	check "$ipt" "$all" 'all(.verdict == "drop" and .packet.dport == 52000 and .packet.tcp_flags == "S")' \
		"every story should be of a dropped SYN to 52000"
	check "$ipt" "$all" 'all(.drop.table == "filter" and .drop.chain == "KUBE-FIREWALL"
		and (.drop.rule // "" | contains("-m mark --mark 0x8000/0x8000 -j DROP")))' \
		"every story should name the KUBE-FIREWALL rule '-m mark --mark 0x8000/0x8000 -j DROP' as the drop"
	check "$ipt" "$all" 'all(.mark_origins[0].set_in == "ip nat KUBE-MARK-DROP"
		and (.mark_origins[0].set_by // "" | test("-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000"))
		and (.mark_origins[0].matched_by // "" | contains("-m mark --mark 0x8000/0x8000 -j DROP")))' \
		"every story should trace the mark to KUBE-MARK-DROP"
	check "$ipt" "$all" 'all(.mark_origins[0].comment == "demo/web:http has no local endpoints"
		and (.mark_origins[0].reached_by // "" | test("^-A KUBE-XLB-[A-Z2-7]{16} .*has no local endpoints.* -j KUBE-MARK-DROP$")))' \
		"every story should say KUBE-MARK-DROP was reached from the KUBE-XLB rule 'demo/web:http has no local endpoints'"
	check "$ipt" "$all" 'all(.explanation | test("set by rule .* in ip nat KUBE-MARK-DROP") and test("demo/web:http has no local endpoints"))' \
		"every explanation should name KUBE-MARK-DROP and the no-local-endpoints rule"
}

# The nftables backend: no mark, no iptables syntax; every SYN is told once,
# dropped by the vmap rule of nodeport-endpoints-check.
run_nft_case() {
	local p=nb$$kt n
	SCEN_NS+=("$p-client" "$p-node")
	n=$(kubeproxy_services $RULES nft)
	kubeproxy_up "$p" "$n" nft 2>"$SCEN_TMP/up.err" || fail "kubeproxy_up nft failed: $(cat "$SCEN_TMP/up.err")"
	echo "nft: $n services, $(kubeproxy_rules "$n" nft | grep -c '^add rule ') rules"
	scen_bg seed003_listen "$p" 120
	scen_wait_listen "$p-node" 52000
	local out=$SCEN_TMP/nft.jsonl ready=$SCEN_TMP/nft.ready t_start tries=6000 syns0 syns cpu0 cpu1 t_cpu0 t_cpu1
	t_start=$(ms)
	scen_bg $NATBPF trace --netns "$p-node" --dport 52000 --json --duration 6 --ready-file "$ready" >"$out" 2>"$SCEN_TMP/nft.err"
	local pid=$!
	while [ ! -e "$ready" ] && [ $((tries -= 1)) -gt 0 ]; do sleep 0.01; done
	[ -e "$ready" ] || { cat "$SCEN_TMP/nft.err"; fail "nft: natbpf trace did not get ready in 60 s"; }
	local ready_ms=$(($(ms) - t_start))
	echo "nft: natbpf ready after $ready_ms ms"
	[ "$ready_ms" -le "$READY_MS_NFT" ] ||
		problems+=("nft: natbpf took $ready_ms ms to get ready on $RULES rules, more than the $READY_MS_NFT ms reached (READY_MS_NFT)")
	syns0=$(kubeproxy_syns_sent "$p")
	cpu0=$(cpu_ticks "$pid") t_cpu0=$(ms)
	sleep 1
	seed003_connect "$p" 52000 && fail "nft: port 52000 should be dropped by nodeport-endpoints-check"
	syns=$(($(kubeproxy_syns_sent "$p") - syns0))
	cpu1=$(cpu_ticks "$pid") t_cpu1=$(ms)
	local cpu_pct=$((100 * 1000 * (cpu1 - cpu0) / $(getconf CLK_TCK) / (t_cpu1 - t_cpu0)))
	echo "nft: natbpf used $cpu_pct % of a core while tracing ($((t_cpu1 - t_cpu0)) ms)"
	[ "$cpu_pct" -lt "$CPU_PCT" ] ||
		problems+=("nft: natbpf used $cpu_pct % of a core while tracing on $RULES rules, $CPU_PCT % or more")
	[ "$syns" -ge 1 ] || fail "nft: the client sent no SYN: the incident itself is broken"
	wait "$pid" || { cat "$SCEN_TMP/nft.err"; fail "nft: natbpf trace exited $?"; }
	local all=$SCEN_TMP/nft.stories
	jq -s '[.[] | select(.type == "packet")]' "$out" >"$all"
	echo "nft: $syns SYNs sent; natbpf told $(jq length "$all") stories:"
	jq -r '.[] | "  packet \(.number) sport \(.packet.sport) \(.packet.tcp_flags) \(.verdict) in \(.drop.table // "-") \(.drop.chain // "-") rule \(.drop.rule // "-")"' "$all"
	check nft "$all" "length == $syns" "$syns SYNs were sent and dropped, $(jq length "$all") stories told (each dropped SYN must be told exactly once)"
	check nft "$all" 'all(.verdict == "drop" and .packet.dport == 52000 and .packet.tcp_flags == "S"
		and .drop.table == "kube-proxy" and .drop.chain == "nodeport-endpoints-check"
		and (.drop.rule // "" | contains("vmap @no-endpoint-nodeports")))' \
		"every story should be of a dropped SYN to 52000, dropped by the vmap @no-endpoint-nodeports rule of nodeport-endpoints-check"
}

for backend in iptables-legacy iptables-nft; do run_case "$backend"; done
run_nft_case
if [ ${#problems[@]} -gt 0 ]; then
	printf 'FAIL: %s\n' "${problems[@]}" >&2
	fail "trace nodesize: ${#problems[@]} problem(s)"
fi
echo "PASS trace nodesize"

#!/usr/bin/env bash
# natbpf drops --prometheus during seed 003's NodePort incident
# (iptables-legacy): /metrics is scraped before and after a client's SYNs to
# NodePort 52000 die in KUBE-FIREWALL; the KUBE-FIREWALL series (namespace,
# table, chain, rule text, reason) rises by exactly what the rule's counter
# rose, port 80 (DNATed to 52000, working) adds no netfilter series, and
# insert_failed stays 0. A UDP flood into a closed port is scraped while it
# runs: the endpoint answers and the NO_SOCKET series counts every datagram.
# The text is parsed by prometheus_client's parser where python3 has it (this
# host); the VM kernels have no python3 and read the lines with awk. SIGTERM
# ends the run; its recording is explained offline to the same output.
# Bad --prometheus values and a port in use are one-line errors.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed003.sh"
command -v socat >/dev/null || skip "socat is not installed"
command -v iptables-legacy >/dev/null || fail "iptables-legacy is not installed (scripts/setup.sh installs it)"
flood=$(scen_tool udpflood) || exit 1
here=$(cd "$(dirname "$0")" && pwd)
source "$here/prom_lib.sh"

expect_error 2 'prometheus wants ADDR:PORT.*e\.g\. --prometheus 0\.0\.0\.0:9477' $NATBPF drops --prometheus nonsense
expect_error 2 'is not a port \(1-65535\)' $NATBPF drops --prometheus 127.0.0.1:99999
expect_error 2 'is not an IPv4 address' $NATBPF drops --prometheus 10.0.0:9477
expect_error 2 'metrics-max-series must be at least 2' $NATBPF drops --prometheus :9477 --metrics-max-series 1

port=$((20000 + $$ % 20000))
# A port in use: the error names it, and nothing was attached.
busy=$(scen_netns busy) || fail "cannot create a namespace"
ip netns exec "$busy" socat TCP-LISTEN:$port,bind=127.0.0.1 - >/dev/null 2>&1 &
SCEN_PIDS+=($!)
scen_wait_listen "$busy" "$port"
links_before=$(bpftool link list 2>/dev/null | grep -c '^[0-9]')
ip netns exec "$busy" $NATBPF drops --prometheus 127.0.0.1:$port >"$SCEN_TMP/busy.out" 2>"$SCEN_TMP/busy.err"
rc=$?
[ "$rc" -ne 0 ] || fail "a port in use should be an error"
[ "$(wc -l <"$SCEN_TMP/busy.err")" -eq 1 ] || { cat "$SCEN_TMP/busy.err"; fail "one line expected"; }
assert_contains "$SCEN_TMP/busy.err" "cannot serve metrics on 127.0.0.1:$port: .*pick another with --prometheus"
[ "$(bpftool link list 2>/dev/null | grep -c '^[0-9]')" -eq "$links_before" ] || fail "a failed start left BPF links"

p=nb$$pm
SCEN_NS+=("$p-client" "$p-node")
seed003_up "$p" iptables-legacy 2>"$SCEN_TMP/up.err" || fail "seed003_up failed: $(cat "$SCEN_TMP/up.err")"
scen_bg seed003_listen "$p" 120
scen_wait_listen "$p-node" 52000

out=$SCEN_TMP/drops.txt ready=$SCEN_TMP/ready
scen_bg $NATBPF drops --prometheus 127.0.0.1:$port --record "$out.rec" --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
pid=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf drops did not get ready"; }

fw_rule='KUBE-FIREWALL'
fw_labels=(netns="^$p-node\$" layer='^netfilter$' table='^filter$' chain="^$fw_rule\$" family='^ip$'
	rule='^-A KUBE-FIREWALL .*--mark 0x8000/0x8000 -j DROP$' cause='^iptables-legacy rule drop$')
counter() { ip netns exec "$p-node" iptables-legacy-save -c -t filter | grep -- "-A $fw_rule" | sed 's/^\[\([0-9]*\):.*/\1/'; }

prom_scrape "$port" "$SCEN_TMP/m0"
v0=$(prom_value "$SCEN_TMP/m0" natbpf_drops_total "${fw_labels[@]}") || fail "cannot read v0 from the metrics"
c0=$(counter)
seed003_connect "$p" 52000 && fail "port 52000 should be dropped by KUBE-FIREWALL"
seed003_connect "$p" 80 || fail "port 80 (DNAT to the host service) should work"
c1=$(counter)
prom_scrape "$port" "$SCEN_TMP/m1"
v1=$(prom_value "$SCEN_TMP/m1" natbpf_drops_total "${fw_labels[@]}") || fail "cannot read v1 from the metrics"
if [ $((v1 - v0)) -ne $((c1 - c0)) ]; then
	# Seen once in ten runs on a loaded host: one SYN fewer in the kernel's
	# count than in the rule counter read just before. A second scrape tells
	# a late count from a lost one.
	echo "note: KUBE-FIREWALL +$((v1 - v0)) at the first scrape, its counter +$((c1 - c0)); scraping again"
	grep -h "^natbpf_drops_total.*$p-node" "$SCEN_TMP/m1"
	sleep 1.2
	prom_scrape "$port" "$SCEN_TMP/m1"
	v1=$(prom_value "$SCEN_TMP/m1" natbpf_drops_total "${fw_labels[@]}") || fail "cannot read v1 from the metrics"
fi
[ $((c1 - c0)) -ge 1 ] || fail "KUBE-FIREWALL counted no drop"
[ $((v1 - v0)) -eq $((c1 - c0)) ] || { grep -h "^natbpf_drops_total.*$p-node" "$SCEN_TMP/m0" "$SCEN_TMP/m1"; fail "the KUBE-FIREWALL series rose by $((v1 - v0)), the rule's counter by $((c1 - c0))"; }
all_nf=$(prom_value "$SCEN_TMP/m1" natbpf_drops_total netns="^$p-node\$" layer='^netfilter$') || fail "cannot read all_nf from the metrics"
[ "$all_nf" -eq "$v1" ] || { cat "$SCEN_TMP/m1"; fail "netfilter drops in $p-node other than KUBE-FIREWALL's"; }
ins=$(prom_value "$SCEN_TMP/m1" natbpf_conntrack_insert_failed_total netns="^$p-node\$") || fail "cannot read insert_failed"
[ "$ins" -eq 0 ] || fail "insert_failed should not rise"
grep -q "^natbpf_conntrack_insert_failed_total{netns=\"$p-node\"}" "$SCEN_TMP/m1" || fail "no insert_failed series for $p-node"
grep -q '^natbpf_build_info{version="[0-9.]*",revision="[^"]*"} 1$' "$SCEN_TMP/m1" || fail "no natbpf_build_info"
echo "ok KUBE-FIREWALL +$((v1 - v0)) = its counter"

# A flood while scraping: the endpoint answers during it, and counts it all
# (the kernel's own count: Udp NoPorts; udpflood's connected socket has some
# sends refused by the port-unreachable replies).
sent=300000
noports() { ip netns exec "$p-client" awk '/^Udp:/ { if (seen++) print $3 }' /proc/net/snmp; }
np0=$(noports)
n0=$(prom_value "$SCEN_TMP/m1" natbpf_drops_total netns="^$p-client\$" reason='^NO_SOCKET$') || fail "cannot read n0 from the metrics"
ip netns exec "$p-client" "$flood" 127.0.0.1 9 "$sent" >"$SCEN_TMP/pps" &
fpid=$!
t0=$(date +%s%N)
prom_scrape "$port" "$SCEN_TMP/m2"
ms=$((($(date +%s%N) - t0) / 1000000))
kill -0 "$fpid" 2>/dev/null && during=while || during=after
wait "$fpid" || fail "udpflood failed"
sleep 1.2  # a scrape within a second of the last refresh gets the same figures
prom_scrape "$port" "$SCEN_TMP/m3"
n3=$(prom_value "$SCEN_TMP/m3" natbpf_drops_total netns="^$p-client\$" reason='^NO_SOCKET$') || fail "cannot read n3 from the metrics"
np3=$(noports)
[ $((np3 - np0)) -ge 1000 ] || fail "the flood reached no closed port (Udp NoPorts +$((np3 - np0)))"
[ $((n3 - n0)) -eq $((np3 - np0)) ] || { cat "$SCEN_TMP/m3"; fail "NO_SOCKET rose by $((n3 - n0)), Udp NoPorts by $((np3 - np0))"; }
echo "ok scrape answered in $ms ms ($during the flood of $sent at $(cat "$SCEN_TMP/pps") packets/s); NO_SOCKET +$((n3 - n0)) = Udp NoPorts"

kill -TERM "$pid"
wait "$pid" || { cat "$SCEN_TMP/err"; fail "natbpf drops exited $? on SIGTERM"; }
assert_contains "$SCEN_TMP/err" "counting drops until stopped, metrics on http://127.0.0.1:$port/metrics"
assert_contains "$out" '^drops in '
explain_same "$out.rec" "$out"
echo "PASS drops prometheus"

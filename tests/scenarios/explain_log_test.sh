#!/usr/bin/env bash
# `natbpf explain --log` on logs captured here, on a real kernel, by the
# tools people use, compared with what `natbpf trace` told of the same
# incident live:
# - seed 003 (iptables-legacy): the live story of the SYN to NodePort 52000,
#   then the same traffic logged three ways with a plain `-j TRACE` rule —
#   kernel log lines (nf_log_syslog, read back with dmesg), NFLOG captured by
#   `tcpdump -i nflog:0 -w` (pcap) and by ulogd2's JSON output — each told
#   offline, without root, against `iptables-legacy-save`: the same drop
#   rule, path and mark origin as live, and port 80's DNAT to 52000;
# - seed 001 (nftables): `nft monitor trace` saved while natbpf traced the
#   same packets: the same steps, drop rule and handles as the live story.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed003.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed001.sh"

for t in tcpdump ulogd dmesg; do command -v "$t" >/dev/null || fail "$t is missing: run scripts/setup.sh"; done
[ -e /proc/sys/net/netfilter/nf_log_all_netns ] || fail "no net.netfilter.nf_log_all_netns: nf_log is not built"

# Offline, as nobody, the way a log is read on another machine.
explain_offline() { # OUT ARGS...
	local out=$1
	shift
	chmod 755 "$SCEN_TMP"
	chmod 644 "$SCEN_TMP"/*
	setpriv --reuid=65534 --regid=65534 --clear-groups $NATBPF explain "$@" --json >"$out" 2>"$out.err" ||
		{ cat "$out.err"; fail "natbpf explain $* failed"; }
}

# The facts a story from a log must share with the live one: verdict, drop
# point, mark origin and every step outside the raw table (the live run's
# own TRACE rule is there; the log's is the user's).
story_shape() { # FILE
	jq -c '{verdict, drop: (.drop | {table, chain, rule, handle}),
		mark: (.mark_origins[0] | {set_by, set_in, comment}),
		steps: [.steps[] | select(.table != "raw") | {table, chain, handle, rule, verdict}]}' "$1"
}

# live_drop NAME NS PORT CONNECT...: natbpf trace of PORT in NS while
# CONNECT runs (it must fail); the first dropped story to $SCEN_TMP/NAME.first.
live_drop() {
	local name=$1 ns=$2 port=$3 ready=$SCEN_TMP/$1.ready pid
	shift 3
	scen_bg $NATBPF trace --netns "$ns" --dport "$port" --json --duration 60 --ready-file "$ready" >"$SCEN_TMP/$name.jsonl" 2>"$SCEN_TMP/$name.err"
	pid=$!
	scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/$name.err"; fail "natbpf trace did not get ready"; }
	"$@" && fail "$name: the connection to $port should fail"
	sleep 1
	kill -INT "$pid"
	wait "$pid" || { cat "$SCEN_TMP/$name.err"; fail "natbpf trace exited $?"; }
	jq -s '[.[] | select(.type == "packet" and .verdict == "drop")][0]' "$SCEN_TMP/$name.jsonl" >"$SCEN_TMP/$name.first"
}

p=nb$$l
SCEN_NS+=("$p-client" "$p-node")
seed003_up "$p" iptables-legacy 2>"$SCEN_TMP/up.err" || fail "seed003_up failed: $(cat "$SCEN_TMP/up.err")"
scen_bg seed003_listen "$p" 600
scen_wait_listen "$p-node" 52000
N="ip netns exec $p-node"

# ---- live
live_drop live "$p-node" 52000 seed003_connect "$p" 52000
jq_true "$SCEN_TMP/live.first" '.drop.chain == "KUBE-FIREWALL"' "live: the SYN should be dropped in KUBE-FIREWALL"
story_shape "$SCEN_TMP/live.first" >"$SCEN_TMP/live.shape"

# ---- the same traffic, logged by a plain TRACE rule
$N iptables-legacy -t raw -A PREROUTING -p tcp --dport 52000 -j TRACE
$N iptables-legacy -t raw -A PREROUTING -p tcp --dport 80 -j TRACE
$N iptables-legacy-save >"$SCEN_TMP/iptables.txt"
traffic() {
	seed003_connect "$p" 52000 && fail "port 52000 should still be dropped"
	seed003_connect "$p" 80 || fail "port 80 (DNAT to 52000) should connect"
	sleep 1
}

# 1. kernel log lines: nf_log_syslog, and (this namespace is not the
# initial one) net.netfilter.nf_log_all_netns, restored on exit.
all_netns=$(cat /proc/sys/net/netfilter/nf_log_all_netns)
trap 'echo "$all_netns" >/proc/sys/net/netfilter/nf_log_all_netns; scen_cleanup' EXIT
modprobe nf_log_syslog 2>/dev/null
$N sysctl -qw net.netfilter.nf_log.2=nf_log_ipv4 || fail "cannot route nf_log to nf_log_syslog"
echo 1 >/proc/sys/net/netfilter/nf_log_all_netns
mark="natbpf-scenario-$$-start"
echo "$mark" >/dev/kmsg
traffic
echo "$all_netns" >/proc/sys/net/netfilter/nf_log_all_netns
dmesg | sed -n "/$mark/,\$p" | grep "SRC=10.30.0.1 " >"$SCEN_TMP/kern.log"
[ -s "$SCEN_TMP/kern.log" ] || fail "no TRACE line reached the kernel log"

# 2. NFLOG: tcpdump -i nflog:0 -w (pcap), then ulogd2 (JSON).
$N sysctl -qw net.netfilter.nf_log.2=nfnetlink_log || fail "cannot route nf_log to nfnetlink_log"
$N tcpdump -Z root -i nflog:0 -U -w "$SCEN_TMP/trace.pcap" 2>"$SCEN_TMP/tcpdump.err" &
tpid=$!
SCEN_PIDS+=("$tpid")
for _ in $(seq 100); do grep -q listening "$SCEN_TMP/tcpdump.err" && break; sleep 0.1; done
grep -q listening "$SCEN_TMP/tcpdump.err" || { cat "$SCEN_TMP/tcpdump.err"; fail "tcpdump -i nflog:0 did not start"; }
traffic
kill -INT "$tpid"
wait "$tpid"

lib=$(dirname "$(find /usr/lib -name ulogd_output_JSON.so | head -1)")
{
	echo '[global]'
	echo "logfile=\"$SCEN_TMP/ulogd.log\""
	for pl in inppkt_NFLOG raw2packet_BASE filter_IFINDEX filter_IP2STR filter_HWHDR output_JSON; do echo "plugin=\"$lib/ulogd_$pl.so\""; done
	echo 'stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,mac2str1:HWHDR,json1:JSON'
	echo '[log1]'
	echo 'group=0'
	echo '[json1]'
	echo 'sync=1'
	echo "file=\"$SCEN_TMP/ulogd.json\""
} >"$SCEN_TMP/ulogd.conf"
$N ulogd -d -c "$SCEN_TMP/ulogd.conf" -p "$SCEN_TMP/ulogd.pid" || fail "ulogd did not start: $(cat "$SCEN_TMP/ulogd.log")"
for _ in $(seq 100); do [ -s "$SCEN_TMP/ulogd.pid" ] && break; sleep 0.1; done
SCEN_PIDS+=("$(cat "$SCEN_TMP/ulogd.pid")")
sleep 1
traffic
kill "$(cat "$SCEN_TMP/ulogd.pid")"
sleep 0.5

for log in kern.log trace.pcap ulogd.json; do
	out=$SCEN_TMP/$log.jsonl
	explain_offline "$out" --log "$SCEN_TMP/$log" --ruleset "$SCEN_TMP/iptables.txt"
	jq -s '[.[] | select(.type == "packet" and .verdict == "drop")][0]' "$out" >"$out.first"
	story_shape "$out.first" >"$out.shape"
	cmp -s "$SCEN_TMP/live.shape" "$out.shape" || {
		diff <(jq . "$SCEN_TMP/live.shape") <(jq . "$out.shape")
		fail "$log: the story of the dropped SYN differs from the live one"
	}
	jq_true "$out.first" '.packet.dport == 52000 and .steps[-1].log != null' "$log: the drop should name its log line"
	jq -s '[.[] | select(.type == "packet" and .packet.dport == 80)][0]' "$out" >"$out.dnat"
	jq_true "$out.dnat" '.nat[0].kind == "dnat" and .nat[0].from == "10.30.0.2:80" and .nat[0].to == "10.30.0.2:52000" and
		(.nat[0].rule | contains("demo/site:http")) and .verdict == "unknown" and (.explanation | contains("no verdict in the log"))' \
		"$log: port 80 should be DNATed to 52000 and have no verdict in the log"
	# --match keeps only the packets asked for
	explain_offline "$out.match" --log "$SCEN_TMP/$log" --ruleset "$SCEN_TMP/iptables.txt" --match 'tcp dport 80'
	jq -s '[.[] | select(.type == "packet")]' "$out.match" >"$out.match.all"
	jq_true "$out.match.all" 'length > 0 and all(.packet.dport == 80) and .[0].nat[0].to == "10.30.0.2:52000"' "$log: --match 'tcp dport 80'"
	echo "ok $log"
done

# ---- nftables: `nft monitor trace` saved while natbpf traces the same packets
q=nb$$n
scen_seed001 "$q" nft
H="ip netns exec $q-host"
$H nft monitor trace >"$SCEN_TMP/monitor.txt" 2>&1 &
SCEN_PIDS+=($!)
mpid=$!
$H nft -a list ruleset >"$SCEN_TMP/ruleset.nft"
live_drop nft "$q-host" 1222 seed001_connect "$q" 2
kill "$mpid"
explain_offline "$SCEN_TMP/monitor.jsonl" --log "$SCEN_TMP/monitor.txt" --ruleset "$SCEN_TMP/ruleset.nft"
jq -s '[.[] | select(.type == "packet" and .verdict == "drop")][0]' "$SCEN_TMP/monitor.jsonl" >"$SCEN_TMP/monitor.first"
shape() { jq -c '{verdict, drop: (.drop | {table, chain, rule, handle}), nat: [.nat[] | {kind, from, to}],
	steps: [.steps[] | {table, chain, handle, verdict}]}' "$1"; }
cmp -s <(shape "$SCEN_TMP/nft.first") <(shape "$SCEN_TMP/monitor.first") || {
	diff <(shape "$SCEN_TMP/nft.first" | jq .) <(shape "$SCEN_TMP/monitor.first" | jq .)
	fail "nft monitor trace: the story of the dropped SYN differs from the live one"
}
jq_true "$SCEN_TMP/monitor.first" '.drop.chain == "allowed_dnats" and (.drop.evidence[0] | test("nft monitor trace line monitor.txt:[0-9]+"))'
echo "ok nft monitor trace"

# ---- bad input: one line naming the fix, exit 2
echo "hello" >"$SCEN_TMP/junk.txt"
ip netns exec "$q-client" timeout 3 tcpdump -Z root -i lo -c 1 -w "$SCEN_TMP/eth.pcap" 2>/dev/null &
sleep 1
ip netns exec "$q-client" bash -c 'echo x >/dev/udp/127.0.0.1/9; echo x >/dev/udp/127.0.0.1/9' 
wait $! || true
[ -s "$SCEN_TMP/eth.pcap" ] || fail "tcpdump -i lo wrote no pcap"
expect_error 2 "has no netfilter trace lines natbpf reads .*: give the log that holds them, or name its format with --format" \
	$NATBPF explain --log "$SCEN_TMP/junk.txt"
expect_error 2 "cannot open .*/missing.log: No such file or directory: give the path of a saved log" \
	$NATBPF explain --log "$SCEN_TMP/missing.log"
expect_error 2 "is no saved ruleset natbpf reads: save one with iptables-save" \
	$NATBPF explain --log "$SCEN_TMP/kern.log" --ruleset "$SCEN_TMP/junk.txt"
expect_error 2 "unknown log format 'syslog': use --format auto, kernel, nft, pcap or ulogd" \
	$NATBPF explain --log "$SCEN_TMP/kern.log" --format syslog
expect_error 2 "cannot read --match 'tcp dport http': 'http' is no port" \
	$NATBPF explain --log "$SCEN_TMP/kern.log" --match 'tcp dport http'
expect_error 2 "give either a recording or --log files, not both" $NATBPF explain "$SCEN_TMP/kern.log" --log "$SCEN_TMP/kern.log"
expect_error 2 "explain needs a recording or --log FILE" $NATBPF explain
expect_error 2 "is a pcap of link type .*, not NFLOG: capture with tcpdump -i nflog" \
	$NATBPF explain --log "$SCEN_TMP/eth.pcap" --format pcap
echo "PASS explain --log"

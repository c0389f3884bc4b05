#!/usr/bin/env bash
# Only the kernel speaks on natbpf's netfilter sockets: a datagram another
# process sends to the nftables trace socket or the NFLOG socket (a forged
# trace message) is counted as a parse error and told as nothing.
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || skip "python3 is not available to forge netlink datagrams"
command -v iptables-legacy >/dev/null || fail "iptables-legacy is not installed (scripts/setup.sh installs it)"

ns=$(scen_netns foreign) || fail "cannot create a namespace"
# A legacy rule: natbpf then also runs its NFLOG (iptables-legacy TRACE) source.
ip netns exec "$ns" iptables-legacy -A INPUT -p tcp --dport 1222 -j ACCEPT || fail "cannot add a legacy rule"
out=$SCEN_TMP/trace.json ready=$SCEN_TMP/ready
scen_bg $NATBPF trace --netns "$ns" --dport 1222 --json --duration 6 --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
pid=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf trace did not get ready"; }
# natbpf's NETLINK_NETFILTER (12) sockets in the namespace: /proc/net/netlink's
# third column is the port id; natbpf's own sockets are the ones it opened
# (their inodes are among its fds).
inodes=$(ls -l /proc/$pid/fd 2>/dev/null | grep -o 'socket:\[[0-9]*\]' | tr -dc '0-9\n')
ports=$(ip netns exec "$ns" awk -v list="$(echo $inodes)" 'BEGIN { n = split(list, a, " "); for (i = 1; i <= n; i++) own[a[i]] = 1 }
	$2 == 12 && ($NF in own) { print $3 }' /proc/net/netlink)
[ -n "$ports" ] || fail "no netfilter netlink socket of natbpf found"
count=$(echo "$ports" | wc -w)
for port in $ports; do
	# An nfnetlink message (NFNL_SUBSYS_ULOG 4 / NFULNL_MSG_PACKET 0, then an
	# NFT_MSG_TRACE-looking one) from a user process.
	ip netns exec "$ns" python3 - "$port" <<'PY' || fail "cannot send the forged datagram"
import socket, struct, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
s.bind((0, 0))
for msgtype in ((4 << 8) | 0, (10 << 8) | 21):
    body = struct.pack("BBH", 2, 0, 0)  # nfgenmsg
    hdr = struct.pack("=LHHLL", 16 + len(body), msgtype, 0, 1, 0)
    s.sendto(hdr + body, (port, 0))
PY
done
wait "$pid" || { cat "$SCEN_TMP/err"; fail "natbpf trace exited $?"; }
jq -s . "$out" >"$out.all" || fail "output is not JSON lines"
jq_true "$out.all" '[.[] | select(.type == "packet")] | length == 0' "a forged datagram was told as a packet"
jq_true "$out.all" "[.[] | select(.type == \"summary\")][0].parse_errors >= $count" \
	"every forged datagram ($count sockets) must be counted as a parse error"
echo "PASS trace foreign ($count sockets)"

# The namespaces bench/overhead.sh and bench/progcost.sh flood, sourced by
# both (they must measure the same paths). bench_topology_up PREFIX sets
# ns ctns fwc fwr fws and builds:
#   $ns    an nftables drop rule for udp dport 9 (the drop flood);
#   $ctns  the same rule behind "ct state new": each dropped packet has an
#          unconfirmed conntrack entry (what natbpf clash examines);
#   $fwc -> $fwr -> $fws  the forwarded path: client 10.77.0.2 -> router
#          10.77.0.1:80, DNATed to the server 10.78.0.9:8080.
# bench_topology_down deletes them, whatever state they are in.
bench_topology_up() { # PREFIX
	ns=$1 ctns=${1}ct fwc=${1}fc fwr=${1}fr fws=${1}fs
	local n
	for n in "$ns" "$ctns" "$fwc" "$fwr" "$fws"; do
		ip netns add "$n"
		ip -n "$n" link set lo up
	done
	ip netns exec "$ns" nft 'add table inet b; add chain inet b out { type filter hook output priority 0; }; add rule inet b out udp dport 9 drop'
	ip netns exec "$ctns" nft 'add table inet b; add chain inet b out { type filter hook output priority 0; }; add rule inet b out ct state new udp dport 9 drop'
	ip link add fwc0 netns "$fwc" type veth peer name fwr0 netns "$fwr"
	ip -n "$fwc" addr add 10.77.0.2/24 dev fwc0
	ip -n "$fwc" link set fwc0 up
	ip -n "$fwr" addr add 10.77.0.1/24 dev fwr0
	ip -n "$fwr" link set fwr0 up
	ip link add fwr1 netns "$fwr" type veth peer name fws0 netns "$fws"
	ip -n "$fwr" addr add 10.78.0.1/24 dev fwr1
	ip -n "$fwr" link set fwr1 up
	ip -n "$fws" addr add 10.78.0.9/24 dev fws0
	ip -n "$fws" link set fws0 up
	ip -n "$fws" route add default via 10.78.0.1
	ip netns exec "$fwr" sysctl -qw net.ipv4.ip_forward=1
	ip netns exec "$fwr" nft 'add table ip nat; add chain ip nat prerouting { type nat hook prerouting priority dstnat; policy accept; }; add rule ip nat prerouting udp dport 80 dnat to 10.78.0.9:8080'
}

bench_topology_down() {
	local n
	for n in ${ns:-} ${ctns:-} ${fwc:-} ${fwr:-} ${fws:-}; do ip netns del "$n" 2>/dev/null; done
	return 0
}

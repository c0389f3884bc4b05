# Seed 001 ("NAT part 1 - packet tracing"): `ssh -p 1222 10.1.2.3` should reach
# a container 192.168.70.10:22 behind the host, but times out: the DNAT works,
# then chain allowed_dnats drops the packet because 192.168.70.10 . 22 is not
# in set allow_in. Sourced by the scenario tests and the demo.
#
#   client ns  eth0 10.2.1.2/8 ---- enp0 10.1.2.3/8  host ns  veth21 192.168.70.1/24 ---- eth0 192.168.70.10/24  container ns
#
# seed001_up PREFIX [nft|iptables-nft|iptables-legacy]   -> namespaces PREFIX-client, PREFIX-host, PREFIX-ct
# seed001_down PREFIX

seed001_up() {
	local p=$1 backend=${2:-nft}
	ip netns add "$p-client" && ip netns add "$p-host" && ip netns add "$p-ct" || return 1
	for ns in client host ct; do ip -n "$p-$ns" link set lo up; done
	ip -n "$p-client" link add eth0 type veth peer name enp0 netns "$p-host"
	ip -n "$p-host" link add veth21 type veth peer name eth0 netns "$p-ct"
	ip -n "$p-client" addr add 10.2.1.2/8 dev eth0
	ip -n "$p-host" addr add 10.1.2.3/8 dev enp0
	ip -n "$p-host" addr add 192.168.70.1/24 dev veth21
	ip -n "$p-ct" addr add 192.168.70.10/24 dev eth0
	ip -n "$p-client" link set eth0 up
	ip -n "$p-host" link set enp0 up
	ip -n "$p-host" link set veth21 up
	ip -n "$p-ct" link set eth0 up
	ip -n "$p-ct" route add default via 192.168.70.1
	ip netns exec "$p-host" sysctl -qw net.ipv4.ip_forward=1
	case $backend in
	nft) seed001_nft "$p" ;;
	iptables-nft | iptables-legacy) seed001_iptables "$p" "$backend" ;;
	*) echo "unknown backend $backend" >&2; return 1 ;;
	esac
}

seed001_nft() {
	ip netns exec "$1-host" nft -f - <<'NFT'
table inet nat {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 10.1.2.3 tcp dport 1222 dnat ip to 192.168.70.10:22
	}
}
table inet filter {
	set allow_in {
		type ipv4_addr . inet_service
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		ct status dnat jump allowed_dnats
	}
	chain allowed_dnats {
		meta nfproto ipv4 ip daddr . tcp dport @allow_in accept
		drop
	}
}
NFT
}

# The same incident in iptables syntax: the allow set becomes an explicit
# ACCEPT for another backend, so port 22 on .10 falls through to the DROP.
seed001_iptables() {
	local ipt=$2
	ip netns exec "$1-host" "$ipt" -t nat -A PREROUTING -d 10.1.2.3/32 -p tcp --dport 1222 -j DNAT --to-destination 192.168.70.10:22
	ip netns exec "$1-host" "$ipt" -N ALLOWED_DNATS
	ip netns exec "$1-host" "$ipt" -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
	ip netns exec "$1-host" "$ipt" -A FORWARD -m conntrack --ctstate DNAT -j ALLOWED_DNATS
	ip netns exec "$1-host" "$ipt" -A ALLOWED_DNATS -d 192.168.70.11/32 -p tcp --dport 22 -j ACCEPT
	ip netns exec "$1-host" "$ipt" -A ALLOWED_DNATS -j DROP
}

# A listener on the container's port 22 (answers and closes).
seed001_listen() {
	ip netns exec "$1-ct" socat -T 5 TCP-LISTEN:22,reuseaddr,fork SYSTEM:'echo SSH-2.0-natbpf-demo' </dev/null >/dev/null 2>&1 &
	echo $!
}

# One connection attempt from the client, like `ssh -p 1222 10.1.2.3`.
seed001_connect() {
	ip netns exec "$1-client" timeout "${2:-3}" socat -T 2 - TCP:10.1.2.3:1222,connect-timeout="${2:-3}" </dev/null
}

seed001_down() {
	for ns in client host ct; do ip netns del "$1-$ns" 2>/dev/null; done
	return 0
}

# Seed 004 ("SNAT失败为什么会表现为超时", why a failed SNAT looks like a timeout):
# every TCP connection to 127.0.0.1:8080 is SNATed to the single source
# 127.0.0.1:40000. The first connection works; the SYN of the second gets the
# same reply tuple (127.0.0.1:8080 -> 127.0.0.1:40000), is dropped at
# conntrack confirm (insert_failed and drop rise) and the client sits in
# SYN_SENT until it times out. Built inside a namespace, on its loopback.
# Sourced by the scenario tests and the demo.
#
# seed004_up NS [iptables-nft|iptables-legacy|nft] [FIRST_PORT [LAST_PORT]]
#     the SNAT rule in namespace NS (which must exist, lo up)
# seed004_server NS PORT SECONDS   a TCP listener that holds every connection open (background it)
# seed004_client NS PORT SECONDS   one connection to 127.0.0.1:PORT held for SECONDS (background it)

seed004_up() {
	local ns=$1 backend=${2:-iptables-nft} p1=${3:-40000} p2=${4:-}
	local to=127.0.0.1:$p1
	[ -z "$p2" ] || to=$to-$p2
	case $backend in
	iptables-nft | iptables-legacy)
		ip netns exec "$ns" "$backend" -t nat -A POSTROUTING -p tcp -d 127.0.0.1 --dport 8080 -j SNAT --to-source "$to"
		;;
	nft)
		ip netns exec "$ns" nft -f - <<NFT
table ip natbpf_seed004 {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip daddr 127.0.0.1 tcp dport 8080 snat to $to
	}
}
NFT
		;;
	*) echo "seed004_up: unknown backend $backend" >&2; return 1 ;;
	esac
}

seed004_server() {
	ip netns exec "$1" timeout "$3" socat TCP-LISTEN:"$2",reuseaddr,fork SYSTEM:"sleep $3" 2>/dev/null
}

seed004_client() {
	ip netns exec "$1" timeout "$3" socat -u SYSTEM:"sleep $3" TCP:127.0.0.1:"$2" 2>/dev/null
}

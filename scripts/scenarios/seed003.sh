# Seed 003 (a Kubernetes NodePort colliding with a host service): the node runs
# a host service on port 52000 and kube-proxy (iptables mode) has made 52000
# the NodePort of demo/web, which has no local endpoints. nat KUBE-NODEPORTS
# jumps to KUBE-XLB-WEB, which jumps to KUBE-MARK-DROP (mark 0x8000), and
# filter KUBE-FIREWALL drops every marked packet: SYNs to 52000 vanish,
# while port 80, DNATed to the same service, works. Built in two namespaces
# joined by a veth pair (client 10.30.0.1, node 10.30.0.2). Sourced by the
# scenario tests.
#
# seed003_up PREFIX iptables-legacy|iptables-nft|nft   namespaces PREFIX-client, PREFIX-node (must not exist);
#                                                   nft: the same rules written for nftables, with counters
# seed003_listen PREFIX SECONDS                     the host service on 52000 (background it)
# seed003_connect PREFIX PORT                       one connection attempt, 2 s at most; 0 if it connected

# The two namespaces and their veth pair, without rules (also the layout of
# scripts/scenarios/kubeproxy.sh).
seed003_netns() {
	local p=$1
	ip netns add "$p-client" && ip netns add "$p-node" || return 1
	ip -n "$p-client" link set lo up
	ip -n "$p-node" link set lo up
	ip link add "${p}c" netns "$p-client" type veth peer name "${p}n" netns "$p-node" || return 1
	ip -n "$p-client" addr add 10.30.0.1/24 dev "${p}c"
	ip -n "$p-node" addr add 10.30.0.2/24 dev "${p}n"
	ip -n "$p-client" link set "${p}c" up
	ip -n "$p-node" link set "${p}n" up
}

seed003_up() {
	local p=$1 ipt=$2
	seed003_netns "$p" || return 1
	if [ "$ipt" = nft ]; then
		ip netns exec "$p-node" nft -f - <<'NFT'
table ip kube {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 80 counter dnat to 10.30.0.2:52000 comment "demo/site:http"
		counter jump nodeports comment "kubernetes service portals"
	}
	chain nodeports {
		tcp dport 52000 counter jump xlb_web comment "demo/web:http"
	}
	chain xlb_web {
		counter jump mark_drop comment "demo/web:http has no local endpoints"
	}
	chain mark_drop {
		counter meta mark set meta mark | 0x00008000
	}
	chain input {
		type filter hook input priority filter; policy accept;
		meta mark & 0x00008000 == 0x00008000 counter drop comment "kubernetes firewall for dropping marked packets"
	}
}
NFT
		return
	fi
	ip netns exec "$p-node" "$ipt-restore" <<'RULES'
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-XLB-WEB - [0:0]
:KUBE-MARK-DROP - [0:0]
-A PREROUTING -p tcp -m tcp --dport 80 -m comment --comment "demo/site:http" -j DNAT --to-destination 10.30.0.2:52000
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-NODEPORTS
-A KUBE-NODEPORTS -p tcp -m comment --comment "demo/web:http" -m tcp --dport 52000 -j KUBE-XLB-WEB
-A KUBE-XLB-WEB -m comment --comment "demo/web:http has no local endpoints" -j KUBE-MARK-DROP
-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
-A INPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked packets" -m mark --mark 0x8000/0x8000 -j DROP
COMMIT
RULES
}

seed003_listen() {
	ip netns exec "$1-node" timeout "$2" socat TCP-LISTEN:52000,reuseaddr,fork SYSTEM:"echo host-service" 2>/dev/null
}

seed003_connect() {
	ip netns exec "$1-client" timeout 2 socat -u TCP:10.30.0.2:"$2",connect-timeout=2 - 2>/dev/null | grep -q host-service
}

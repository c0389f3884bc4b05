# A kube-proxy-shaped node of N services: the seed 003 incident (NodePort
# 52000 of demo/web, which has no local endpoints, collides with a host
# service) inside a ruleset the size of a real cluster's. Service 0 is
# demo/web; services 1..N-1 are ns-<i%100>/svc-<i>:http, each a ClusterIP
# 10.96.x.y:80, two endpoints 10.244.x.y:8080 chosen at random and a NodePort
# 30000+i (externalTrafficPolicy Cluster). demo/web has the same and NodePort
# 52000 with externalTrafficPolicy Local and no endpoint on this node:
#   iptables: nat KUBE-SERVICES (last rule) -> KUBE-NODEPORTS (its last rule)
#             -> KUBE-XLB-* -> KUBE-MARK-DROP (mark 0x8000, comment
#             "demo/web:http has no local endpoints"); filter INPUT ->
#             KUBE-FIREWALL drops the marked SYN.
#   nft:      kube-proxy's nftables mode (table ip kube-proxy, the layout of
#             pkg/proxy/nftables/proxier.go): nat-prerouting -> services ->
#             vmap @service-nodeports -> external-* (short-circuit rules only),
#             then filter-input -> nodeport-endpoints-check drops it through
#             the element { tcp . 52000 comment "demo/web:http" : drop } of
#             vmap @no-endpoint-nodeports. No mark: nftables mode has none.
# The iptables chains are those of kube-proxy 1.24+ (KUBE-EXT-*) with the
# KUBE-XLB-* chain and kubelet's KUBE-MARK-DROP/KUBE-FIREWALL of earlier
# releases for the Local service, as on a node upgraded over the years.
# Hashes in chain names are made up (deterministic, unique), not kube-proxy's.
#
# Rules (lines "-A" / "add rule"): iptables 11 per service + 27 (fixed, and
# demo/web's KUBE-XLB; nat: KUBE-SERVICES 1, KUBE-SVC 3, KUBE-SEP 2x2,
# KUBE-NODEPORTS 1, KUBE-EXT 2); nft 8 per service + 24 (service 2,
# endpoint 2x2, external 2) and 3 map/set elements per service (4 for
# demo/web). 1818 services: 20025 iptables rules; 2500: 27527.
# kubeproxy_services RULES BACKEND gives the N for about RULES rules.
#
# Sourced by scenario tests and bench/nodesize.sh; needs seed003.sh for
# seed003_listen/seed003_connect (same layout: client 10.30.0.1, node 10.30.0.2).
#
# kubeproxy_rules N iptables|nft           the ruleset on stdout (iptables-restore / nft -f input)
# kubeproxy_services RULES iptables|nft    the number of services that gives about RULES rules
# kubeproxy_netns PREFIX                   namespaces PREFIX-client, PREFIX-node joined by a veth (must not exist)
# kubeproxy_up PREFIX N iptables-legacy|iptables-nft|nft
#                                          kubeproxy_netns, then the ruleset of N services loaded in PREFIX-node
# kubeproxy_syns_sent PREFIX               SYNs the client namespace has sent (active opens + SYN retransmissions)

KUBEPROXY_NODEPORT=52000

kubeproxy_rules() {
	local n=${1:?kubeproxy_rules N iptables|nft} mode=${2:?kubeproxy_rules N iptables|nft}
	[ "$n" -ge 1 ] && [ "$n" -le 20000 ] || { echo "kubeproxy_rules: N must be 1..20000" >&2; return 1; }
	awk -v n="$n" -v mode="$mode" -v np0="$KUBEPROXY_NODEPORT" '
	# Made-up kube-proxy hashes: x = (k * odd + salt) mod 2^32 is a bijection
	# of k, so its base32 digits make the name unique; the rest is padding.
	function enc(v, len,   s) {
		s = ""
		while (len-- > 0) { s = s substr(B32, v % 32 + 1, 1); v = int(v / 32) }
		return s
	}
	function hash(k, salt, len,   x, y) {
		x = ((k + 7919) * 2654435761 + salt * 97) % 4294967296
		y = ((k + 7919) * 2246822519 + salt * 3266489917) % 4294967296
		return substr(enc(x, 7) enc(y, 7) enc((x + y) % 1024, 2), 1, len)
	}
	function ip(base, k) { return base "." int(k / 250) "." (k % 250 + 1) }
	function name(i) { return i == 0 ? "demo/web" : "ns-" (i % 100) "/svc-" i }
	BEGIN {
		B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
		for (i = 0; i < n; i++) {
			cip[i] = ip("10.96", i); np[i] = i == 0 ? np0 : 30000 + i
			ep[i, 0] = ip("10.244", 2 * i); ep[i, 1] = ip("10.244", 2 * i + 1)
		}
		if (mode == "iptables") iptables(); else if (mode == "nft") nft()
		else { print "kubeproxy_rules: mode must be iptables or nft" > "/dev/stderr"; exit 1 }
	}
	function iptables(   i, e, svc, sep, ext, c) {
		print "*filter"
		print ":INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]"
		print ":KUBE-EXTERNAL-SERVICES - [0:0]\n:KUBE-FIREWALL - [0:0]\n:KUBE-FORWARD - [0:0]"
		print ":KUBE-KUBELET-CANARY - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-PROXY-CANARY - [0:0]"
		print ":KUBE-PROXY-FIREWALL - [0:0]\n:KUBE-SERVICES - [0:0]"
		print "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL"
		print "-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS"
		print "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES"
		print "-A INPUT -j KUBE-FIREWALL"
		print "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL"
		print "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD"
		print "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
		print "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES"
		print "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL"
		print "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
		print "-A OUTPUT -j KUBE-FIREWALL"
		print "-A KUBE-FIREWALL -m comment --comment \"kubernetes firewall for dropping marked packets\" -m mark --mark 0x8000/0x8000 -j DROP"
		print "-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
		print "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"
		print "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT"
		print "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
		print "COMMIT"
		print "*nat"
		print ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]"
		print ":KUBE-KUBELET-CANARY - [0:0]\n:KUBE-MARK-DROP - [0:0]\n:KUBE-MARK-MASQ - [0:0]"
		print ":KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-PROXY-CANARY - [0:0]\n:KUBE-SERVICES - [0:0]"
		for (i = 0; i < n; i++) {
			print ":KUBE-SVC-" hash(i, 1, 16) " - [0:0]"
			print ":" (i == 0 ? "KUBE-XLB-" : "KUBE-EXT-") hash(i, 1, 16) " - [0:0]"
			for (e = 0; e < 2; e++) print ":KUBE-SEP-" hash(2 * i + e, 2, 16) " - [0:0]"
		}
		print "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
		print "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
		print "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"
		print "-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000"
		print "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"
		print "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"
		print "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0"
		print "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully"
		for (i = 0; i < n; i++) {
			svc = "KUBE-SVC-" hash(i, 1, 16); c = name(i) ":http"
			print "-A KUBE-SERVICES -d " cip[i] "/32 -p tcp -m comment --comment \"" c " cluster IP\" -m tcp --dport 80 -j " svc
			print "-A " svc " ! -s 10.244.0.0/16 -d " cip[i] "/32 -p tcp -m comment --comment \"" c " cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ"
			for (e = 0; e < 2; e++) {
				sep = "KUBE-SEP-" hash(2 * i + e, 2, 16)
				print "-A " svc " -m comment --comment \"" c " -> " ep[i, e] ":8080\"" \
					(e == 0 ? " -m statistic --mode random --probability 0.50000000000" : "") " -j " sep
				print "-A " sep " -s " ep[i, e] "/32 -m comment --comment \"" c "\" -j KUBE-MARK-MASQ"
				print "-A " sep " -p tcp -m comment --comment \"" c "\" -m tcp -j DNAT --to-destination " ep[i, e] ":8080"
			}
			if (i == 0) continue
			ext = "KUBE-EXT-" hash(i, 1, 16)
			print "-A " ext " -m comment --comment \"masquerade traffic for " c " external destinations\" -j KUBE-MARK-MASQ"
			print "-A " ext " -j " svc
		}
		# demo/web last: its SYN walks every other NodePort rule first.
		for (i = 1; i <= n; i++) {
			c = name(i % n) ":http"
			ext = (i % n == 0 ? "KUBE-XLB-" : "KUBE-EXT-") hash(i % n, 1, 16)
			print "-A KUBE-NODEPORTS -p tcp -m comment --comment \"" c "\" -m tcp --dport " np[i % n] " -j " ext
		}
		xlb = "KUBE-XLB-" hash(0, 1, 16); svc = "KUBE-SVC-" hash(0, 1, 16)
		print "-A " xlb " -s 10.244.0.0/16 -m comment --comment \"Redirect pods trying to reach external loadbalancer VIP to clusterIP\" -j " svc
		print "-A " xlb " -m comment --comment \"masquerade LOCAL traffic for demo/web:http LB IP\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ"
		print "-A " xlb " -m comment --comment \"route LOCAL traffic for demo/web:http LB IP to service chain\" -m addrtype --src-type LOCAL -j " svc
		print "-A " xlb " -m comment --comment \"demo/web:http has no local endpoints\" -j KUBE-MARK-DROP"
		print "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
		print "COMMIT"
	}
	function nft(   T, i, e, c, s, ext, epc) {
		T = "ip kube-proxy"
		print "add table " T " { comment \"rules for kube-proxy\" ; }"
		print "add set " T " cluster-ips { type ipv4_addr ; comment \"Active ClusterIPs\" ; }"
		print "add set " T " nodeport-ips { type ipv4_addr ; comment \"IPs that accept NodePort traffic\" ; }"
		print "add map " T " firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment \"destinations that are subject to LoadBalancerSourceRanges\" ; }"
		print "add map " T " no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to service nodeports with no endpoints\" ; }"
		print "add map " T " no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to services with no endpoints\" ; }"
		print "add map " T " service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }"
		print "add map " T " service-nodeports { type inet_proto . inet_service : verdict ; comment \"NodePort traffic\" ; }"
		print "add chain " T " cluster-ips-check"
		print "add chain " T " filter-prerouting-pre-dnat { type filter hook prerouting priority -110 ; }"
		print "add chain " T " filter-output-pre-dnat { type filter hook output priority -110 ; }"
		print "add chain " T " filter-forward { type filter hook forward priority 0 ; }"
		print "add chain " T " filter-input { type filter hook input priority 0 ; }"
		print "add chain " T " filter-output { type filter hook output priority 0 ; }"
		print "add chain " T " firewall-check"
		print "add chain " T " mark-for-masquerade"
		print "add chain " T " masquerading"
		print "add chain " T " nat-output { type nat hook output priority -100 ; }"
		print "add chain " T " nat-postrouting { type nat hook postrouting priority 100 ; }"
		print "add chain " T " nat-prerouting { type nat hook prerouting priority -100 ; }"
		print "add chain " T " nodeport-endpoints-check"
		print "add chain " T " reject-chain { comment \"helper for @no-endpoint-services / @no-endpoint-nodeports\" ; }"
		print "add chain " T " services"
		print "add chain " T " service-endpoints-check"
		print "add rule " T " cluster-ips-check ip daddr @cluster-ips reject comment \"Reject traffic to invalid ports of ClusterIPs\""
		print "add rule " T " cluster-ips-check ip daddr { 10.96.0.0/12 } drop comment \"Drop traffic to unallocated ClusterIPs\""
		print "add rule " T " filter-prerouting-pre-dnat ct state new jump firewall-check"
		print "add rule " T " filter-forward ct state new jump service-endpoints-check"
		print "add rule " T " filter-forward ct state new jump cluster-ips-check"
		print "add rule " T " filter-input ct state new jump nodeport-endpoints-check"
		print "add rule " T " filter-input ct state new jump service-endpoints-check"
		print "add rule " T " filter-output ct state new jump service-endpoints-check"
		print "add rule " T " filter-output-pre-dnat ct state new jump firewall-check"
		print "add rule " T " filter-output ct state new jump cluster-ips-check"
		print "add rule " T " firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips"
		print "add rule " T " mark-for-masquerade mark set mark or 0x4000"
		print "add rule " T " masquerading mark and 0x4000 == 0 return"
		print "add rule " T " masquerading mark set mark xor 0x4000"
		print "add rule " T " masquerading masquerade fully-random"
		print "add rule " T " nat-output jump services"
		print "add rule " T " nat-postrouting jump masquerading"
		print "add rule " T " nat-prerouting jump services"
		print "add rule " T " nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports"
		print "add rule " T " reject-chain reject"
		print "add rule " T " services ip daddr . meta l4proto . th dport vmap @service-ips"
		print "add rule " T " services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"
		print "add element " T " nodeport-ips { 10.30.0.2 }"
		print "add rule " T " service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services"
		for (i = 0; i < n; i++) {
			c = name(i) "/tcp/http"
			s = "service-" hash(i, 1, 8) "-" c; ext = "external-" hash(i, 1, 8) "-" c
			for (e = 0; e < 2; e++) {
				epc[e] = "endpoint-" hash(2 * i + e, 2, 8) "-" c "__" ep[i, e] "/8080"
				print "add chain " T " " epc[e]
				print "add rule " T " " epc[e] " ip saddr " ep[i, e] " jump mark-for-masquerade"
				print "add rule " T " " epc[e] " meta l4proto tcp dnat to " ep[i, e] ":8080"
			}
			print "add chain " T " " s
			print "add rule " T " " s " ip daddr " cip[i] " ip saddr != 10.244.0.0/16 jump mark-for-masquerade"
			print "add rule " T " " s " numgen random mod 2 vmap { 0 : goto " epc[0] " , 1 : goto " epc[1] " }"
			print "add chain " T " " ext
			if (i == 0) {
				# externalTrafficPolicy Local, no endpoint on this node
				print "add rule " T " " ext " ip saddr 10.244.0.0/16 goto " s " comment \"short-circuit pod traffic\""
				print "add rule " T " " ext " fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\""
				print "add rule " T " " ext " fib saddr type local goto " s " comment \"short-circuit local traffic\""
				print "add element " T " no-endpoint-nodeports { tcp . " np[i] " comment \"" name(i) ":http\" : drop }"
			} else {
				print "add rule " T " " ext " jump mark-for-masquerade"
				print "add rule " T " " ext " goto " s
			}
			print "add element " T " cluster-ips { " cip[i] " }"
			print "add element " T " service-ips { " cip[i] " . tcp . 80 : goto " s " }"
			print "add element " T " service-nodeports { tcp . " np[i] " : goto " ext " }"
		}
	}'
}

kubeproxy_services() { # RULES BACKEND
	local per=11 fixed=27
	case $2 in nft) per=8 fixed=24 ;; esac
	local n=$((($1 - fixed + per - 1) / per))
	[ "$n" -ge 1 ] || n=1
	echo "$n"
}

kubeproxy_netns() { # PREFIX (seed003.sh must be sourced)
	seed003_netns "$1"
}

# nft: one transaction per 1000 services. In one transaction of 12500
# services the kernel spends minutes validating every goto of the vmaps
# (sys time, superlinear: 5000 services 7 s, 12500 services 110 s, on 6.18);
# in chunks the same ruleset loads in a fraction of that.
kubeproxy_up() { # PREFIX N BACKEND
	local p=$1 n=$2 backend=$3 dir rc=0 f
	kubeproxy_netns "$p" || return 1
	case $backend in
	nft)
		dir=$(mktemp -d /tmp/kubeproxy.XXXXXX) || return 1
		kubeproxy_rules "$n" nft | awk -v dir="$dir" 'BEGIN { f = dir "/000" }
			/^add chain ip kube-proxy endpoint-/ && ++eps % 2000 == 1 { close(f); f = sprintf("%s/%03d", dir, ++c) }
			{ print > f }' || rc=1
		for f in "$dir"/*; do
			[ $rc -eq 0 ] || break
			ip netns exec "$p-node" nft -f "$f" || rc=1
		done
		rm -rf "$dir"
		return $rc
		;;
	iptables-legacy | iptables-nft) kubeproxy_rules "$n" iptables | ip netns exec "$p-node" "$backend-restore" ;;
	*) echo "kubeproxy_up: backend must be iptables-legacy, iptables-nft or nft" >&2; return 1 ;;
	esac
}

kubeproxy_syns_sent() { # PREFIX
	ip netns exec "$1-client" awk '
		$1 == "Tcp:" && !tn { for (i = 2; i <= NF; i++) th[$i] = i; tn = 1; next }
		$1 == "Tcp:" { opens = $th["ActiveOpens"] }
		$1 == "TcpExt:" && !xn { for (i = 2; i <= NF; i++) xh[$i] = i; xn = 1; next }
		$1 == "TcpExt:" { retrans = $xh["TCPSynRetrans"] }
		END { print opens + retrans }' /proc/net/snmp /proc/net/netstat
}

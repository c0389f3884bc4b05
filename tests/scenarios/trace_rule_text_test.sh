#!/usr/bin/env bash
# trace prints nftables rules as nft does without libnftables: the rules of
# each chain a story crossed are dumped from the kernel and printed by
# natbpf (src/sources/nft_rule_text.cpp), and a chain holding a rule it
# cannot print is listed by libnftables instead. On a node with kube-proxy's
# nftables ruleset (30 services; seed 003's NodePort 52000 has no local
# endpoints, so its SYN is dropped by the vmap of nodeport-endpoints-check),
# plus an inet table whose input chain the SYN crosses first, holding rules
# of other shapes (dependencies nft hides, an anonymous set, a one-byte
# prefix, an interface name, conntrack states, ip6) and one natbpf does not
# print (a limit), every rule line of every chain the recording holds must
# be the line `nft -a -t -s list chain` prints for it now. A chain natbpf
# printed has no "# handle" on its chain line (libnftables prints one): the
# kube-proxy chains must be among them, the chain with the limit must not.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed003.sh"
source "$(dirname "$0")/../../scripts/scenarios/kubeproxy.sh"

p=nb$$rt
SCEN_NS+=("$p-client" "$p-node")
kubeproxy_up "$p" 30 nft 2>"$SCEN_TMP/up.err" || fail "kubeproxy_up nft failed: $(cat "$SCEN_TMP/up.err")"
ip netns exec "$p-node" nft -f - <<'NFT' || fail "cannot load the inet table"
table inet shapes {
	set s4 { type ipv4_addr; }
	chain in {
		type filter hook input priority -5; policy accept;
		tcp dport 22 accept
		ip saddr 1.2.3.4 drop
		iifname "eth9" accept
		ct state established,related accept
		meta l4proto { tcp, udp } th dport 53 accept
		ip6 saddr ::1 drop
		ip daddr != @s4 counter
		udp sport 53 ip daddr 10.0.0.0/8 counter accept
		ip saddr 10.30.0.0/16 meta mark & 0x00000010 == 0x00000010 drop
	}
	chain limited {
		type filter hook input priority -4; policy accept;
		tcp dport 8443 limit rate 5/second accept
	}
}
NFT
scen_bg seed003_listen "$p" 60
scen_wait_listen "$p-node" 52000
out=$SCEN_TMP/trace.jsonl ready=$SCEN_TMP/ready rec=$SCEN_TMP/trace.rec
scen_bg $NATBPF trace --netns "$p-node" --dport 52000 --json --duration 5 --record "$rec" --ready-file "$ready" \
	>"$out" 2>"$SCEN_TMP/trace.err"
pid=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/trace.err"; fail "natbpf trace did not get ready"; }
seed003_connect "$p" 52000 && fail "port 52000 should be dropped by nodeport-endpoints-check"
wait "$pid" || { cat "$SCEN_TMP/trace.err"; fail "natbpf trace exited $?"; }

jq_true <(jq -s '[.[] | select(.type == "packet")]' "$out") 'length >= 1 and all(.verdict == "drop"
	and .drop.chain == "nodeport-endpoints-check"
	and .drop.rule == "ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports")' \
	"the SYNs were not told as dropped by the vmap rule of nodeport-endpoints-check"

# The recording's last ruleset: "FAMILY TABLE CHAIN<TAB>chain line<TAB>rule line" for every rule.
jq -rs '[.[] | select(.t == "ruleset")] | last | .nft' "$rec" | awk -v OFS='\t' '
	/^table / { family = $2; table = $3 }
	/^\tchain / { chain = $2; head = $0 }
	/# handle [0-9]+$/ && /^\t\t/ { line = $0; sub(/^\t+/, "", line); print family " " table " " chain, head, line }' \
	>"$SCEN_TMP/recorded"
[ -s "$SCEN_TMP/recorded" ] || fail "the recording holds no rule"
compared=0 ours=""
while IFS=$'\t' read -r where head line; do
	read -r family table chain <<<"$where"
	case $table in natbpf_*) continue ;; esac # natbpf's own table, gone with it
	nft_lines=$(ip netns exec "$p-node" nft -a -t -s list chain "$family" "$table" "$chain" | sed -n 's/^\t\t//p' | grep '# handle')
	grep -qxF -- "$line" <<<"$nft_lines" || fail "natbpf read \"$line\" in $where; nft prints that chain's rules as: $nft_lines"
	compared=$((compared + 1))
	[[ $head == *"# handle"* ]] || ours+=" $chain"
done <"$SCEN_TMP/recorded"
echo "rule lines compared with nft: $compared; chains natbpf printed itself:$(tr ' ' '\n' <<<"$ours" | sort -u | tr '\n' ' ')"
for c in nodeport-endpoints-check filter-input in; do
	[[ " $ours " == *" $c "* ]] || fail "chain $c was not printed by natbpf (listed by libnftables, or not read)"
done
grep -q $'\t''tcp dport 8443 limit rate 5/second accept # handle' "$SCEN_TMP/recorded" ||
	fail "the chain with the limit rule was not read, or its rule was printed otherwise"
[[ " $ours " != *" limited "* ]] || fail "the chain with a limit (not printed by natbpf) was not listed by libnftables"
echo "PASS trace prints the rules it crossed as nft does"

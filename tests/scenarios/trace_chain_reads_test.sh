#!/usr/bin/env bash
# trace reads only the chains a story crossed: the base chains' names and
# hooks at start, then each crossed chain's rules (nft `list chain`, and for an
# iptables-nft table `iptables-nft -S CHAIN`), not the node's whole ruleset.
# In an iptables-nft namespace a UDP packet to port 9 is dropped in APP,
# reached from OUTPUT; UNRELATED (a rule for port 5555) is never crossed.
# The recording, which holds every ruleset text the run read, must name APP's
# rule (by nft: the drop chain's near misses read nft text) and OUTPUT's (by
# iptables-nft -S and the rule handles, no libnftables cache) and not
# UNRELATED's, and explain must tell the same story from it.
# Then a chain named "counter" (an nft keyword: `list chain ip filter
# counter` is a syntax error in nft) drops port 10 with a rule natbpf does
# not print itself (an xtables comment match, which only libnftables
# prints): the run falls back to the whole ruleset and still names the rule.
source "$(dirname "$0")/lib.sh"
command -v iptables-nft >/dev/null || fail "iptables-nft is missing: run scripts/setup.sh"

ns=$(scen_netns chains) || fail "cannot create a namespace"
ipt() { ip netns exec "$ns" iptables-nft "$@" || fail "iptables-nft $* failed"; }
ipt -N APP
ipt -A APP -p udp --dport 9 -j DROP
ipt -N UNRELATED
ipt -A UNRELATED -p tcp --dport 5555 -j ACCEPT
ipt -A OUTPUT -p udp -j APP
ipt -A INPUT -p tcp -j UNRELATED

# same_stories NAME: explain of the recording, as an unprivileged user,
# tells the live run's stories.
same_stories() {
	chmod 755 "$SCEN_TMP"
	chmod 644 "$SCEN_TMP/$1.rec"
	setpriv --reuid=65534 --regid=65534 --clear-groups $NATBPF explain "$SCEN_TMP/$1.rec" --json >"$SCEN_TMP/$1.offline" 2>&1 ||
		{ cat "$SCEN_TMP/$1.offline"; fail "natbpf explain failed"; }
	jq -s '[.[] | select(.type == "packet")]' "$SCEN_TMP/$1.jsonl" >"$SCEN_TMP/$1.live.packets"
	jq -s '[.[] | select(.type == "packet")]' "$SCEN_TMP/$1.offline" >"$SCEN_TMP/$1.offline.packets"
	cmp -s "$SCEN_TMP/$1.live.packets" "$SCEN_TMP/$1.offline.packets" || {
		diff "$SCEN_TMP/$1.live.packets" "$SCEN_TMP/$1.offline.packets" | head -20
		fail "explain told other stories than the live run"
	}
}

# trace_one PORT NAME: traces a UDP datagram to PORT with --record; the
# stories in $SCEN_TMP/NAME.jsonl, the recording in $SCEN_TMP/NAME.rec.
trace_one() {
	local port=$1 name=$2 ready=$SCEN_TMP/$2.ready pid
	scen_bg $NATBPF trace --netns "$ns" --dport "$port" --json --duration 30 --record "$SCEN_TMP/$name.rec" \
		--ready-file "$ready" >"$SCEN_TMP/$name.jsonl" 2>"$SCEN_TMP/$name.err"
	pid=$!
	scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/$name.err"; fail "natbpf trace did not get ready"; }
	ip netns exec "$ns" bash -c "echo x >/dev/udp/127.0.0.1/$port" 2>/dev/null
	for _ in $(seq 50); do
		grep -q '"type":"packet"' "$SCEN_TMP/$name.jsonl" && break
		sleep 0.1
	done
	sleep 0.5
	kill -INT "$pid"
	wait "$pid" || { cat "$SCEN_TMP/$name.err"; fail "natbpf trace exited $?"; }
	jq -s . "$SCEN_TMP/$name.jsonl" >"$SCEN_TMP/$name.all" || fail "the output is not JSON lines"
	# Every ruleset text the run read (each record holds what it knew then).
	jq -s '[.[] | select(.t == "ruleset")] | last' "$SCEN_TMP/$name.rec" >"$SCEN_TMP/$name.ruleset" ||
		fail "the recording is not JSON lines"
}

trace_one 9 app
jq_true "$SCEN_TMP/app.all" '[.[] | select(.type == "packet")] | length == 1 and .[0].verdict == "drop" and
	.[0].drop.chain == "APP" and .[0].drop.rule == "-A APP -p udp -m udp --dport 9 -j DROP"' \
	"the drop in APP was not told once, by its rule"
jq_true "$SCEN_TMP/app.all" '[.[] | select(.type == "packet")][0].steps[0] |
	.chain == "OUTPUT" and .hook == "output" and .rule == "-A OUTPUT -p udp -j APP" and .syntax == "iptables"' \
	"the jump in OUTPUT was not told by its iptables rule"
# APP, which dropped it, by nft (its near misses read nft text); OUTPUT by
# iptables-nft -S and the rule handles alone, without libnftables.
jq_true "$SCEN_TMP/app.ruleset" '.nft | contains("udp dport 9 counter drop # handle")' "APP's rules were not read by nft"
jq_true "$SCEN_TMP/app.ruleset" '.nft | test("hook output priority 0; policy accept;\n\t*-A OUTPUT -p udp -j APP # handle [0-9]+")' \
	"OUTPUT's rules were not read as iptables-nft -S lines with their handles"
jq_true "$SCEN_TMP/app.ruleset" '(.nft | contains("5555") | not) and (.iptables_nft.ip | contains("5555") | not)' \
	"UNRELATED's rules were read: the story never crossed that chain"
jq_true "$SCEN_TMP/app.ruleset" '(.nft | contains("chain UNRELATED") | not) and (.nft | contains("chain INPUT"))' \
	"the chain list at start named a regular chain no story crossed (UNRELATED), or lacked a base chain (INPUT)"
same_stories app

ipt -N counter
ipt -A counter -p udp --dport 10 -m comment --comment keyword -j DROP
ipt -I OUTPUT 1 -p udp --dport 10 -j counter
trace_one 10 keyword
jq_true "$SCEN_TMP/keyword.all" '[.[] | select(.type == "packet")] | length == 1 and .[0].verdict == "drop" and
	.[0].drop.chain == "counter" and .[0].drop.rule == "-A counter -p udp -m udp --dport 10 -m comment --comment keyword -j DROP"' \
	"the drop in chain counter was not told once, by its rule"
jq_true "$SCEN_TMP/keyword.ruleset" '.nft | contains("5555")' "the whole ruleset was not read for a chain nft cannot name"
same_stories keyword

# Without a recording the crossed chains are read on a worker, not on the
# loop that reads the events: every `iptables-nft -S CHAIN` natbpf ran was
# started by a thread other than its main one (strace -f: the pid that
# issued the clone whose child ran it). The story is the same.
if command -v strace >/dev/null; then
	ready=$SCEN_TMP/live.ready
	scen_bg strace -f -qq -o "$SCEN_TMP/live.strace" -e trace=clone,clone3,fork,vfork,execve -e signal=none \
		$NATBPF trace --netns "$ns" --dport 9 --json --duration 4 --ready-file "$ready" >"$SCEN_TMP/live.jsonl" 2>"$SCEN_TMP/live.err"
	pid=$!
	scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/live.err"; fail "natbpf trace (under strace) did not get ready"; }
	ip netns exec "$ns" bash -c "echo x >/dev/udp/127.0.0.1/9" 2>/dev/null
	wait "$pid" || { cat "$SCEN_TMP/live.err"; fail "natbpf trace (under strace) exited $?"; }
	jq_true <(jq -s . "$SCEN_TMP/live.jsonl") '[.[] | select(.type == "packet")] | length == 1 and .[0].drop.chain == "APP"
		and .[0].steps[0].rule == "-A OUTPUT -p udp -j APP"' "the live run (no recording) did not tell the drop in APP by its rules"
	# "PID syscall(...) = RET", or split in "<unfinished ...>" and "<... clone3 resumed> ... = RET".
	awk '
		NR == 1 { main = $1 }
		/(clone3?|v?fork)\(|<\.\.\. (clone3?|v?fork) resumed>/ && $NF ~ /^[0-9]+$/ { parent[$NF] = $1 }
		/execve\(.*"-S", "[A-Za-z]+"/ { child[$1] = 1 } # each try of a PATH search: a child once
		END {
			for (c in child) { n++; if (parent[c] == main) bad++; else if (parent[c] == "") unknown++ }
			printf "chain reads: %d, by the main thread: %d, parent not found: %d\n", n, bad, unknown
			exit !(n >= 2 && bad == 0 && unknown == 0)
		}' "$SCEN_TMP/live.strace" || { grep -E 'execve|clone' "$SCEN_TMP/live.strace" | head -30; fail "a chain was read on natbpf's main thread (the event loop)"; }
else
	echo "strace is not installed here: the thread that read the chains is not checked (the stories are)"
fi
echo "PASS trace reads the chains a story crossed"

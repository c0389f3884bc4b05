#!/usr/bin/env bash
# Seed 001 built with iptables, both backends. iptables-nft: the rules arrive
# in the nftables trace stream and natbpf shows them in iptables syntax, as
# xtables-monitor --trace does. iptables-legacy (the workflow of seed 003,
# automated): natbpf installs a TRACE rule, routes TRACE to NFLOG, resolves
# the "table:chain:rule N" lines against iptables-legacy-save, and removes
# the rule and restores the logger on exit.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed001.sh"

run_backend() { # iptables-nft | iptables-legacy
	local backend=$1 p=nb$$-${1#iptables-}
	scen_seed001 "$p" "$backend"
	local logger_before out=$SCEN_TMP/$backend.jsonl ready=$SCEN_TMP/$backend.ready first=$SCEN_TMP/$backend.first.json
	logger_before=$(ip netns exec "$p-host" cat /proc/sys/net/netfilter/nf_log/2)
	scen_bg $NATBPF trace --netns "$p-host" --dport 1222 --json --count 1 --duration 60 --record "$out.rec" --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
	local tracer=$!
	scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf did not get ready ($backend)"; }
	seed001_connect "$p" 2 && fail "the connection should time out ($backend)"
	wait $tracer || fail "natbpf trace exited $? ($backend)"

	jq -s '[.[] | select(.type == "packet")][0]' "$out" >"$first"
	jq_true "$first" '.nat[0].kind == "dnat" and .nat[0].to == "192.168.70.10:22"'
	jq_true "$first" '.nat[0].rule == "-A PREROUTING -d 10.1.2.3/32 -p tcp -m tcp --dport 1222 -j DNAT --to-destination 192.168.70.10:22"'
	jq_true "$first" '.drop.family == "ip" and .drop.table == "filter" and .drop.chain == "ALLOWED_DNATS" and .drop.rule == "-A ALLOWED_DNATS -j DROP"'
	jq_true "$first" '[.steps[] | select(.chain == "FORWARD")][0].rule == "-A FORWARD -m conntrack --ctstate DNAT -j ALLOWED_DNATS"'
	jq_true "$first" '.near_misses[0].rule == "-A ALLOWED_DNATS -d 192.168.70.11/32 -p tcp -m tcp --dport 22 -j ACCEPT"'
	jq_true "$out" 'select(.type == "summary") | .packets == 1'
	# The recording tells the same story offline (legacy: from the NFLOG datagrams).
	$NATBPF explain "$out.rec" --json >"$out.offline" 2>"$SCEN_TMP/explain.err" || { cat "$SCEN_TMP/explain.err"; fail "natbpf explain failed ($backend)"; }
	cmp -s <(jq -c 'select(.type == "packet")' "$out") <(jq -c 'select(.type == "packet")' "$out.offline") ||
		fail "explain of the recording told another story ($backend)"
	if [ "$backend" = iptables-legacy ]; then
		jq_true "$first" '[.steps[] | select(.chain == "ALLOWED_DNATS")][0].evidence == "nflog"'
		jq_true "$first" '.drop.evidence | index("iptables TRACE (nflog)") != null'
		ip netns exec "$p-host" iptables-legacy-save | grep -q natbpf_ && fail "TRACE rule left behind"
		[ "$(ip netns exec "$p-host" cat /proc/sys/net/netfilter/nf_log/2)" = "$logger_before" ] || fail "nf_log.2 not restored"
		legacy_rules_change "$p"
	else
		jq_true "$first" '[.steps[] | select(.chain == "ALLOWED_DNATS")][0].evidence == "nftrace"'
	fi
	echo "ok $backend"
}

# iptables-legacy numbers rules by position and has no generation: after a
# rule is inserted and another deleted, "ALLOWED_DNATS rule 2" is a different
# rule. natbpf must name the rule as it is when the packet comes.
legacy_rules_change() {
	local p=$1 out=$SCEN_TMP/legacy-change.jsonl ready=$SCEN_TMP/legacy-change.ready
	scen_bg $NATBPF trace --netns "$p-host" --dport 1222 --json --duration 60 --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
	local tracer=$!
	scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf did not get ready (legacy change)"; }
	# From here on, which thread starts each iptables-legacy-save (strace -f
	# -p follows every thread natbpf has and starts).
	local strace_pid="" st=$SCEN_TMP/legacy-change.strace stop_at
	if command -v strace >/dev/null; then
		strace -f -qq -ttt -p "$tracer" -o "$st" -e trace=clone,clone3,fork,vfork,execve -e signal=none &
		strace_pid=$!
		sleep 0.5
		kill -0 "$strace_pid" 2>/dev/null || { echo "strace cannot attach here: the thread that saves is not checked"; strace_pid=""; }
	fi
	seed001_connect "$p" 2 && fail "the connection should time out (legacy change)"
	ip netns exec "$p-host" iptables-legacy -I ALLOWED_DNATS 1 -s 10.9.9.9/32 -j ACCEPT || fail "iptables-legacy -I failed"
	ip netns exec "$p-host" iptables-legacy -D ALLOWED_DNATS 2 || fail "iptables-legacy -D failed"
	sleep 1.5
	seed001_connect "$p" 2 && fail "the connection should still time out (legacy change)"
	stop_at=$EPOCHREALTIME
	kill -INT $tracer
	wait $tracer || fail "natbpf trace exited $? (legacy change)"
	if [ -n "$strace_pid" ]; then
		wait "$strace_pid"
		# The table whose shape changed is saved again on a worker, not on the
		# loop (but by the final flush, after SIGINT, for a story not yet prepared).
		awk -v main="$tracer" -v stop="${stop_at/,/.}" '
			/(clone3?|v?fork)\(|<\.\.\. (clone3?|v?fork) resumed>/ && $NF ~ /^[0-9]+$/ { parent[$NF] = $1 }
			/execve\(.*iptables-legacy-save", "-t", "filter"/ && $2 < stop { child[$1] = 1 }
			END {
				for (c in child) { n++; if (parent[c] == main) bad++; else if (parent[c] == "") unknown++ }
				printf "filter saved again: %d, by the main thread: %d, parent not found: %d\n", n, bad, unknown
				exit !(n >= 1 && bad == 0 && unknown == 0)
			}' "$st" || { grep -E "execve|clone" "$st" | head -30; fail "iptables-legacy-save ran on natbpf's main thread (the event loop)"; }
	else
		echo "strace is not installed here: the thread that saved the changed table is not checked (the stories are)"
	fi
	jq -s '[.[] | select(.type == "packet" and .repeat_of == null)]' "$out" >"$out.stories"
	jq_true "$out.stories" 'length == 2' "expected one story per connection"
	jq_true "$out.stories" 'all(.[]; .drop.chain == "ALLOWED_DNATS" and .drop.rule == "-A ALLOWED_DNATS -j DROP")'
	jq_true "$out.stories" '.[0].near_misses[0].rule == "-A ALLOWED_DNATS -d 192.168.70.11/32 -p tcp -m tcp --dport 22 -j ACCEPT"'
	jq_true "$out.stories" '.[1].near_misses | length == 1 and .[0].rule == "-A ALLOWED_DNATS -s 10.9.9.9/32 -j ACCEPT"'
	echo "ok iptables-legacy rules changed while tracing"
}

# Both backends, always: setup.sh installs them, and a quietly skipped one
# would hide a broken backend.
for backend in iptables-nft iptables-legacy; do
	command -v "$backend" >/dev/null || fail "$backend is not installed (scripts/setup.sh installs it)"
	run_backend "$backend"
done
echo "PASS trace iptables"

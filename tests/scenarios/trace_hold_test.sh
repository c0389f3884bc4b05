#!/usr/bin/env bash
# Tracing armed by the first packet (issue 12): while nothing matches,
# natbpf's marking rules queue a matching packet to natbpf (NFQUEUE) instead
# of setting nftrace, so nf_tables' trace static key stays off for the host.
# The first packet turns tracing on and goes on: it is delivered (UDP to a
# listener), and its story is told like any other; after a quiet while the
# queue rules are back, and the next packet arms again. --no-hold traces from
# the start. A SIGKILLed natbpf leaves no table and no held packet behind.
source "$(dirname "$0")/lib.sh"

ns=$(scen_netns hold) || fail "cannot create a namespace"
ip netns exec "$ns" nft -f - <<'NFT' || fail "cannot load the ruleset"
table inet filter {
	chain output {
		type filter hook output priority filter; policy accept;
		udp dport 5353 counter drop
	}
}
NFT
recv=$SCEN_TMP/received
scen_bg ip netns exec "$ns" socat -u UDP4-RECV:5354,bind=127.0.0.1 OPEN:"$recv",creat,append
send() { echo "$2" | ip netns exec "$ns" socat -u - "UDP-SENDTO:127.0.0.1:$1" 2>/dev/null; }
# The marking rules of natbpf's table (pid $1), one per line.
marking() { ip netns exec "$ns" nft list table inet "natbpf_$1" 2>/dev/null | grep -E 'limit rate' | sed 's/^[[:space:]]*//'; }
# The BPF links process $1 holds (its fds whose fdinfo has a link_type).
links() { grep -l '^link_type:' /proc/"$1"/fdinfo/* 2>/dev/null | wc -l; }

out=$SCEN_TMP/trace.jsonl
ready=$SCEN_TMP/ready
scen_bg $NATBPF trace --netns "$ns" --proto udp --json --duration 60 --record "$SCEN_TMP/hold.rec" --ready-file "$ready" \
	>"$out" 2>"$SCEN_TMP/err"
tracer=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf did not get ready"; }
assert_contains "$SCEN_TMP/err" 'nftables tracing turns on at the first matching packet, held in NFQUEUE [0-9]+ until it is on \((nft queue|xt NFQUEUE)\)' \
	"natbpf should hold the first packet where the kernel can queue one"
queue=$(grep -oE 'held in NFQUEUE [0-9]+' "$SCEN_TMP/err" | grep -oE '[0-9]+$')
marking $tracer >"$SCEN_TMP/idle"
[ "$(wc -l <"$SCEN_TMP/idle")" -eq 2 ] || { cat "$SCEN_TMP/idle"; fail "expected 2 marking rules while idle"; }
# nft prints its queue expression as "queue flags bypass to N", xtables' NFQUEUE as "queue num N bypass".
queued="queue (flags bypass to $queue|num $queue bypass)\$"
assert_contains "$SCEN_TMP/idle" "^meta l4proto udp limit rate 10/second $queued"
assert_not_contains "$SCEN_TMP/idle" nftrace "idle: no nftrace rule may turn the trace key on"
assert_contains "$SCEN_TMP/err" 'until it is on \([^)]*\); the BPF programs are attached while it is on'
[ "$(links $tracer)" -eq 0 ] || fail "idle: natbpf holds $(links $tracer) BPF links, none expected (nothing is traced)"

# The first packets: held (three at once, let go by one verdict), traced, delivered.
senders=()
for m in first second third; do
	send 5354 $m &
	senders+=($!)
done
wait "${senders[@]}"
# sendto returns once the datagram is queued; tracing turns on (and the BPF
# programs attach: a while in an emulated VM) before it goes on.
for _ in $(seq 100); do
	marking $tracer | grep -q nftrace && break
	sleep 0.1
done
marking $tracer >"$SCEN_TMP/armed"
grep -q nftrace "$SCEN_TMP/armed" || { cat "$SCEN_TMP/err" "$SCEN_TMP/armed"; fail "tracing did not turn on within 10 s of the first packets"; }
assert_contains "$SCEN_TMP/armed" '^meta l4proto udp limit rate 10/second meta nftrace set 1$'
# Before it, the flow alone: what a packet traced already meets.
ip netns exec "$ns" nft list chain inet "natbpf_$tracer" mark_out | sed 's/^[[:space:]]*//' >"$SCEN_TMP/armed-chain"
assert_contains "$SCEN_TMP/armed-chain" '^meta l4proto udp$'
assert_not_contains "$SCEN_TMP/armed" queue
[ "$(links $tracer)" -gt 0 ] || fail "armed: natbpf's BPF programs should be attached while tracing is on"
sleep 0.5
send 5353 dropped
sleep 2.5
# 3 s after the last traced packet tracing is still on; natbpf turns it off
# after 5 s quiet (bounded wait for the queue rules).
marking $tracer >"$SCEN_TMP/still"
assert_contains "$SCEN_TMP/still" 'meta nftrace set 1$' "tracing should stay on until the flow is quiet for 5 s"
for _ in $(seq 100); do
	marking $tracer | grep -q queue && break
	sleep 0.1
done
marking $tracer >"$SCEN_TMP/quiet"
assert_contains "$SCEN_TMP/quiet" "^meta l4proto udp limit rate 10/second $queued"
assert_not_contains "$SCEN_TMP/quiet" nftrace "quiet again: tracing should be off"
for _ in $(seq 50); do [ "$(links $tracer)" -eq 0 ] && break; sleep 0.1; done
[ "$(links $tracer)" -eq 0 ] || fail "quiet again: natbpf still holds $(links $tracer) BPF links"
# The next packet arms again. It is one the filter drops: kfree_skb names
# its drop only if the BPF programs were attached before it went on.
send 5353 held-drop
sleep 0.5
send 5354 fourth
sleep 1
kill -INT $tracer
wait $tracer || fail "natbpf trace exited $?"
[ "$(sort "$recv" | tr '\n' ' ')" = "first fourth second third " ] ||
	fail "the held datagrams should be delivered once each, got: $(tr '\n' ' ' <"$recv")"

# Over loopback a datagram is told twice: sent (output), then delivered
# (its prerouting pass has another trace id), as without a hold; the two
# drops once.
jq -s '[.[] | select(.type == "packet")]' "$out" >"$SCEN_TMP/all.json"
n=$(jq length "$SCEN_TMP/all.json")
[ "$n" -eq 10 ] || { jq -c '.[] | {packet, verdict, fate}' "$SCEN_TMP/all.json" >&2; fail "expected 10 stories, got $n"; }
jq_true "$SCEN_TMP/all.json" '[.[] | select(.packet.dport == 5354 and .fate == "sent")] | length == 4'
jq_true "$SCEN_TMP/all.json" '[.[] | select(.packet.dport == 5354 and .fate == "delivered")] | length == 4'
jq_true "$SCEN_TMP/all.json" '([.[] | select(.fate == "sent") | .packet.sport] | sort) == ([.[] | select(.fate == "delivered") | .packet.sport] | sort)'
jq_true "$SCEN_TMP/all.json" '[.[] | select(.packet.dport == 5353)] | length == 2 and all(.verdict == "drop" and .drop.rule == "udp dport 5353 counter drop")'
jq_true "$SCEN_TMP/all.json" '[.[] | select(.packet.dport == 5353)] | all([.drop.evidence[] | select(test("^kfree_skb NETFILTER_DROP"))] | length == 1)' \
	"both drops, the held one too, should carry kfree_skb's record: the BPF programs attach before a held packet goes on"

# natbpf's own swaps of its marking rules move the nftables generation, but
# are no reason to read the ruleset again: the recording holds the read at
# start and the one of the filter chain's rules, for two armings (without
# that, each swap was a read: 5).
reads=$(jq -s '[.[] | select(.t == "ruleset")] | length' "$SCEN_TMP/hold.rec")
[ "$reads" -le 2 ] || fail "natbpf read the ruleset $reads times: its own rule swaps made it read again"

# --no-hold: nftrace from the start, and said.
ready=$SCEN_TMP/ready-nohold
scen_bg $NATBPF trace --netns "$ns" --proto udp --no-hold --duration 60 --ready-file "$ready" >/dev/null 2>"$SCEN_TMP/err2"
tracer=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err2"; fail "natbpf --no-hold did not get ready"; }
assert_contains "$SCEN_TMP/err2" 'nftables tracing is on from the start, for every nftables chain of the host \(--no-hold\)'
marking $tracer >"$SCEN_TMP/nohold"
assert_contains "$SCEN_TMP/nohold" 'meta nftrace set 1$'
assert_not_contains "$SCEN_TMP/nohold" queue
kill -INT $tracer
wait $tracer || fail "natbpf trace --no-hold exited $?"

# Exit while a packet is held: natbpf stopped (SIGSTOP) cannot serve its
# queue, so a datagram waits there; at SIGINT it is let go, not dropped.
ready=$SCEN_TMP/ready-exit
scen_bg $NATBPF trace --netns "$ns" --proto udp --duration 60 --ready-file "$ready" >/dev/null 2>"$SCEN_TMP/err3"
tracer=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err3"; fail "natbpf did not get ready (exit)"; }
kill -STOP $tracer
send 5354 held-at-exit
sleep 0.3
grep -q held-at-exit "$recv" && fail "the datagram should wait in natbpf's queue while natbpf is stopped"
kill -INT $tracer
kill -CONT $tracer
wait $tracer || fail "natbpf trace (exit) exited $?"
sleep 0.3
grep -q held-at-exit "$recv" || fail "the datagram held at exit was dropped"

# SIGKILL while idle: no table is left, and packets are not held by anyone.
ready=$SCEN_TMP/ready-kill
scen_bg $NATBPF trace --netns "$ns" --proto udp --duration 60 --ready-file "$ready" >/dev/null 2>"$SCEN_TMP/err4"
tracer=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err4"; fail "natbpf did not get ready (kill)"; }
kill -KILL $tracer
wait $tracer 2>/dev/null
sleep 0.3
send 5354 after-kill
sleep 0.5
[ "$(tail -1 "$recv")" = after-kill ] || fail "a datagram sent after natbpf was killed was not delivered"
# Tables are owned by natbpf's socket (5.12+); without the owner flag the next start removes them.
ip netns exec "$ns" nft list tables 2>/dev/null | grep -q "natbpf_$tracer" && fail "natbpf_$tracer is left after SIGKILL"
echo "PASS trace hold"

#!/usr/bin/env bash
# Offline explain: seed 001 traced live with --record, then `natbpf explain`
# of the recording, as an unprivileged user, must tell the same stories
# (the same JSON objects), and bad recordings are one-line errors.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed001.sh"

p=nb$$
scen_seed001 "$p"

rec=$SCEN_TMP/incident.rec live=$SCEN_TMP/live.jsonl ready=$SCEN_TMP/ready
scen_bg $NATBPF trace --netns "$p-host" --dport 1222 --json --duration 60 --record "$rec" --ready-file "$ready" >"$live" 2>"$SCEN_TMP/err"
tracer=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf did not get ready"; }
scen_seed001_before_after "$p" "$live"
sleep 1
kill -INT $tracer
wait $tracer || { cat "$SCEN_TMP/err"; fail "natbpf trace exited $?"; }
seed001_down "$p" # nothing of the incident is left when it is explained

# Explained by a user without privileges, from a copy of the file.
chmod 755 "$SCEN_TMP"
chmod 644 "$rec"
offline=$SCEN_TMP/offline.jsonl
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
as_nobody $NATBPF explain "$rec" --json >"$offline" 2>"$SCEN_TMP/explain.err" || { cat "$SCEN_TMP/explain.err"; fail "natbpf explain failed"; }
jq -s '[.[] | select(.type == "packet")]' "$live" >"$SCEN_TMP/live.packets"
jq -s '[.[] | select(.type == "packet")]' "$offline" >"$SCEN_TMP/offline.packets"
jq_true "$SCEN_TMP/live.packets" 'length >= 2' "the live run told too few stories"
cmp -s "$SCEN_TMP/live.packets" "$SCEN_TMP/offline.packets" || {
	diff "$SCEN_TMP/live.packets" "$SCEN_TMP/offline.packets" | head -40
	fail "explain told other stories than the live run"
}
jq_true "$SCEN_TMP/offline.packets" '.[0].drop.chain == "allowed_dnats" and .[0].near_misses[0].why == "192.168.70.10 . 22 is not in set inet filter allow_in"'
jq_true "$SCEN_TMP/offline.packets" 'any(.[]; .verdict == "accept" and .oif == "veth21")'
jq -s '[.[] | select(.type == "summary")][0] | {packets, dropped, accepted, retransmissions, drop_points, lost}' "$live" >"$SCEN_TMP/live.summary"
jq -s '[.[] | select(.type == "summary")][0] | {packets, dropped, accepted, retransmissions, drop_points, lost}' "$offline" >"$SCEN_TMP/offline.summary"
cmp -s "$SCEN_TMP/live.summary" "$SCEN_TMP/offline.summary" || {
	diff "$SCEN_TMP/live.summary" "$SCEN_TMP/offline.summary"
	fail "the summaries differ"
}
jq_true "$SCEN_TMP/offline.summary" '.dropped >= 1 and .accepted >= 1'
# The text form names the same drop.
as_nobody $NATBPF explain "$rec" >"$SCEN_TMP/offline.txt" 2>/dev/null || fail "natbpf explain (text) failed"
assert_contains "$SCEN_TMP/offline.txt" 'DROPPED in inet filter allowed_dnats by rule "drop"'

# Bad input: one line naming the fix, exit 2.
expect_error 2 "cannot read .*: give a file written by .natbpf trace.clash.drops --record FILE." $NATBPF explain "$SCEN_TMP/missing"
echo '{"type":"packet"}' >"$SCEN_TMP/not-a-recording"
expect_error 2 "is not a natbpf recording: give a file written by .natbpf trace.clash.drops --record FILE." $NATBPF explain "$SCEN_TMP/not-a-recording"
expect_error 2 "cannot write the recording .*: give a writable path to --record" \
	$NATBPF trace --netns "$p-host" --dport 1222 --record /nonexistent/dir/rec
# A run that fails before tracing leaves no recording behind.
expect_error 2 "unknown network namespace" $NATBPF trace --netns "nb$$-gone" --dport 1222 --record "$SCEN_TMP/failed.rec"
[ -e "$SCEN_TMP/failed.rec" ] && fail "a failed run left its recording behind"
echo "PASS trace record and explain"

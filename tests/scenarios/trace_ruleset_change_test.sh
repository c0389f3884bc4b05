#!/usr/bin/env bash
# The ruleset changes while natbpf traces (as it does during an incident):
# seed 001, a first dropped connection, then the set rule of allowed_dnats is
# deleted and another rule inserted. The drop rule keeps its handle, so only
# the ruleset generation tells natbpf its rule text is stale: the second
# story's near misses must be the rules of the chain as it is now.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../../scripts/scenarios/seed001.sh"

p=nb$$
scen_seed001 "$p"

out=$SCEN_TMP/trace.jsonl ready=$SCEN_TMP/ready
scen_bg $NATBPF trace --netns "$p-host" --dport 1222 --json --duration 60 --ready-file "$ready" >"$out" 2>"$SCEN_TMP/err"
tracer=$!
scen_wait_file "$ready" 300 || { cat "$SCEN_TMP/err"; fail "natbpf did not get ready"; }

seed001_connect "$p" 2 && fail "the connection should time out"
handle=$(ip netns exec "$p-host" nft -a list chain inet filter allowed_dnats | sed -n 's/.*@allow_in accept # handle \([0-9]*\).*/\1/p')
[ -n "$handle" ] || fail "no handle for the set rule"
ip netns exec "$p-host" nft delete rule inet filter allowed_dnats handle "$handle" || fail "nft delete rule failed"
ip netns exec "$p-host" nft insert rule inet filter allowed_dnats ip saddr 10.9.9.9 accept || fail "nft insert rule failed"
seed001_connect "$p" 2 && fail "the connection should still time out"
sleep 1
kill -INT $tracer
wait $tracer || { cat "$SCEN_TMP/err"; fail "natbpf trace exited $? after SIGINT"; }

jq -s '[.[] | select(.type == "packet" and .repeat_of == null)]' "$out" >"$SCEN_TMP/stories.json"
jq_true "$SCEN_TMP/stories.json" 'length == 2' "expected one story per connection"
jq_true "$SCEN_TMP/stories.json" 'all(.[]; .verdict == "drop" and .drop.chain == "allowed_dnats" and .drop.rule == "drop")'
jq_true "$SCEN_TMP/stories.json" '.[0].near_misses | any(.rule | test("@allow_in accept"))' "before the change: the set rule"
jq_true "$SCEN_TMP/stories.json" '.[1].near_misses | any(.rule == "ip saddr 10.9.9.9 accept")' "after the change: the inserted rule"
jq_true "$SCEN_TMP/stories.json" '.[1].near_misses | all(.rule | test("@allow_in") | not)' "after the change: the deleted rule must be gone"
jq_true "$SCEN_TMP/stories.json" '.[1].near_misses | any(.why == "ip saddr is 10.2.1.2, not 10.9.9.9")' "why the inserted rule missed"
jq_true "$SCEN_TMP/stories.json" '.[1].explanation | test("ip saddr is 10.2.1.2, not 10.9.9.9")'
echo "PASS trace ruleset change"

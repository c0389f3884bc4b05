#!/usr/bin/env bash
# Bad input to natbpf trace: one line naming the fix, exit 2, nothing created.
source "$(dirname "$0")/lib.sh"

ns=$(scen_netns errs) || fail "cannot create a namespace"
check() { # PATTERN ARGS...
	local pat=$1
	shift
	expect_error 2 "$pat" $NATBPF trace "$@"
	ip netns exec "$ns" nft list tables | grep -q natbpf_ && fail "natbpf trace $* left a table"
	return 0
}
check '--dport 0 is out of range: give a port from 1 to 65535' --netns "$ns" --dport 0
check '--dport 70000 is out of range' --netns "$ns" --dport 70000
check '--sport -5 is out of range|--sport' --netns "$ns" --sport -5
check "malformed address for --daddr: '10.1.2.300'" --netns "$ns" --daddr 10.1.2.300
check "--saddr 10.0.0.1 and --daddr fd00::1 are of different families" --netns "$ns" --saddr 10.0.0.1 --daddr fd00::1
check "unknown network namespace 'nb-no-such-ns'" --netns nb-no-such-ns --dport 22
check "unknown interface --iif nosuch0 in netns $ns" --netns "$ns" --iif nosuch0
check "unknown --proto 'sctp2'" --netns "$ns" --proto sctp2
check "bad --rate '5/fortnight'" --netns "$ns" --rate 5/fortnight
check "bad duration" --netns "$ns" --duration soon
check "unknown hook 'nf_bogus'" --netns "$ns" --hook nf_bogus
[ -z "$(ls /sys/fs/bpf 2>/dev/null | grep -i natbpf)" ] || fail "pinned BPF objects left behind"
echo "PASS trace errors"

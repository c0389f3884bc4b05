#!/usr/bin/env bash
# natbpf clash with bad input or without privileges: one line naming the
# fix, exit 2, nothing left behind (no ready file; every check fails before
# anything is loaded).
source "$(dirname "$0")/lib.sh"

expect_error 2 "unknown --proto 'icmp': use tcp or udp" $NATBPF clash --proto icmp
expect_error 2 "bad duration 'soon'" $NATBPF clash --duration soon
expect_error 2 "unknown network namespace 'nb-no-such-ns'.*ip netns list" $NATBPF clash --netns nb-no-such-ns --ready-file "$SCEN_TMP/ready"
[ ! -e "$SCEN_TMP/ready" ] || fail "a failed start must not write the ready file"
expect_error 2 'count|Could not convert' $NATBPF clash --count many
# busybox setpriv (in the VM) lacks --bounding-set: only with a setpriv that can drop them.
if command -v setpriv >/dev/null && setpriv --inh-caps=-all --bounding-set=-all true 2>/dev/null; then
	expect_error 2 'natbpf needs CAP_BPF and CAP_NET_ADMIN: run it as root' \
		setpriv --inh-caps=-all --bounding-set=-all $NATBPF clash --duration 1
elif [ "${NATBPF_VM:-}" != 1 ]; then
	fail "util-linux setpriv (with --bounding-set) is needed for the no-capabilities check"
fi
echo "PASS clash errors"

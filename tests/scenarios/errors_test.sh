#!/usr/bin/env bash
# Bad input and missing privileges: one line naming the fix, non-zero exit,
# nothing left behind.
source "$(dirname "$0")/lib.sh"

expect_error 2 'natbpf: .*' $NATBPF
expect_error 2 'unknown|not expected|extra' $NATBPF probe --bogus
# Without capabilities (util-linux setpriv drops them all, even as root;
# busybox's setpriv, as in the VM, cannot drop the bounding set).
if setpriv --help 2>&1 | grep -q -- --bounding-set; then
	expect_error 2 'natbpf needs CAP_BPF and CAP_NET_ADMIN: run it as root' \
		setpriv --inh-caps=-all --bounding-set=-all $NATBPF probe
elif [ "${NATBPF_VM:-}" = 1 ]; then
	echo "note: no util-linux setpriv in the VM, the no-capabilities case is checked on the host run"
else
	fail "util-linux setpriv (with --bounding-set) is needed for the no-capabilities check"
fi
echo "PASS errors"

#!/usr/bin/env bash
# Runs every scenario test (tests/scenarios/*_test.sh) against one natbpf
# binary. Usage: run.sh [NATBPF] [NAME_FILTER]. Exit 0 only if none failed;
# skips (exit 77) are reported with their reason.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export NATBPF=${1:-${NATBPF:-natbpf}}
filter=${2:-}
pass=0 failn=0 skipn=0 failed=""
for t in "$here"/*_test.sh; do
	name=$(basename "$t" _test.sh)
	[ -n "$filter" ] && [[ "$name" != *$filter* ]] && continue
	start=$(date +%s)
	timeout 360 bash "$t" >"/tmp/natbpf-scen-$name.log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	case $rc in
	0) pass=$((pass + 1)); echo "ok   $name (${secs}s)" ;;
	77) skipn=$((skipn + 1)); echo "skip $name: $(grep SKIP "/tmp/natbpf-scen-$name.log" | tail -1)" ;;
	*) failn=$((failn + 1)); failed="$failed $name"; echo "FAIL $name (exit $rc, ${secs}s)"; tail -40 "/tmp/natbpf-scen-$name.log" | sed 's/^/     | /' ;;
	esac
done
echo "scenarios: $pass passed, $failn failed, $skipn skipped (path: ${NATBPF_EXPECT_PATH:-tracepoint})"
[ $failn -eq 0 ]

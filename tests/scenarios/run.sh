#!/usr/bin/env bash
# Runs every scenario test (tests/scenarios/*_test.sh) against one natbpf
# binary. Usage: run.sh [NATBPF] [NAME_FILTER]. Exit 0 only if none failed.
# A skip (exit 77) is reported with its reason and accepted only when
# tests/scenarios/allowed-skips lists it for this kernel path; any other
# skip counts as a failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export NATBPF=${1:-${NATBPF:-natbpf}}
filter=${2:-}
pass=0 failn=0 skipn=0 failed=""
skip_allowed() { # NAME REASON
	local scen path pattern
	while read -r scen path pattern; do
		[[ -z "$scen" || "$scen" == \#* ]] && continue
		[ "$scen" = "$1" ] || continue
		[ "$path" = "*" ] || [ "$path" = "${NATBPF_EXPECT_PATH:-tracepoint}" ] || continue
		grep -qE -- "$pattern" <<<"$2" && return 0
	done <"$here/allowed-skips"
	return 1
}
for t in "$here"/*_test.sh; do
	name=$(basename "$t" _test.sh)
	[ -n "$filter" ] && [[ "$name" != *$filter* ]] && continue
	start=$(date +%s)
	timeout 360 bash "$t" >"/tmp/natbpf-scen-$name.log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	case $rc in
	0) pass=$((pass + 1)); echo "ok   $name (${secs}s)" ;;
	77)
		reason=$(grep '^SKIP: ' "/tmp/natbpf-scen-$name.log" | tail -1 | cut -c7-)
		if skip_allowed "$name" "$reason"; then
			skipn=$((skipn + 1))
			echo "skip $name: $reason"
		else
			failn=$((failn + 1))
			failed="$failed $name"
			echo "FAIL $name: skipped on the ${NATBPF_EXPECT_PATH:-tracepoint} path, which supports it: $reason"
		fi
		;;
	*) failn=$((failn + 1)); failed="$failed $name"; echo "FAIL $name (exit $rc, ${secs}s)"; tail -40 "/tmp/natbpf-scen-$name.log" | sed 's/^/     | /' ;;
	esac
done
echo "scenarios: $pass passed, $failn failed, $skipn skipped (path: ${NATBPF_EXPECT_PATH:-tracepoint})"
[ $failn -eq 0 ]

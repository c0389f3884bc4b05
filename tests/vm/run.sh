#!/usr/bin/env bash
# The kernel matrix: every scenario test inside Debian's 6.1 and 6.12 kernels
# (QEMU, software emulation), once on the fentry path and once with fentry
# disabled so the kprobe variants run. The two kernels of a pass run in
# parallel. Usage: tests/vm/run.sh [SCENARIO_FILTER]
set -u
cd "$(dirname "$0")/../.."
filter=${1:-}
logdir=build/vm-logs
mkdir -p "$logdir"
status=0

run_pass() { # PATH_NAME ENV...
	local path=$1
	shift
	local pids=() k
	for k in 6.1 6.12; do
		bash scripts/vm-test.sh --kernel "$k" --quiet --log "$logdir/$k-$path.console" --timeout 1500 --env NATBPF_EXPECT_PATH="$path" "$@" \
			-- "tests/scenarios/run.sh /natbpf/build/natbpf '$filter'" >"$logdir/$k-$path.log" 2>&1 &
		pids+=($!)
	done
	local i=0
	for k in 6.1 6.12; do
		if wait "${pids[$i]}"; then
			echo "vm $k $path: ok"
		else
			echo "vm $k $path: FAILED"
			grep -a -A 45 "^vm-test: FAILED" "$logdir/$k-$path.log" | sed "s/^/  [$k $path] | /"
			status=1
		fi
		tr -d "\r" <"$logdir/$k-$path.console" | grep -E "^(ok|skip|FAIL|scenarios:)|^     \|" | sed "s/^/  [$k $path] /"
		i=$((i + 1))
	done
}

start=$(date +%s)
run_pass fentry
run_pass kprobe --env NATBPF_NO_FENTRY=1
echo "VM matrix took $(($(date +%s) - start))s"
exit $status

#!/usr/bin/env bash
# `natbpf explain --log` over saved logs: prints the "Saved logs" section of
# docs/benchmarks.md (scripts/bench.sh includes it; it also runs alone).
# Google Benchmark rows of bench/bench_logs.cpp, then the whole command over
# generated kernel TRACE logs (bench/gen_trace_log.sh) of two sizes: lines
# per second and peak RSS, which must not grow with the log.
# Usage: bench/logs.sh BUILD_DIR [LINES_SMALL LINES_LARGE]
set -euo pipefail
build=${1:?usage: bench/logs.sh BUILD_DIR [LINES_SMALL LINES_LARGE]}
small=${2:-1000000}
large=${3:-4000000}
here=$(cd "$(dirname "$0")" && pwd)
ruleset=$here/../tests/unit/fixtures/logs/seed003-iptables-save.txt
work=$(mktemp -d "${TMPDIR:-/tmp}/natbpf-logs.XXXXXX")
trap 'rm -rf "$work"' EXIT

micro=$("$build/natbpf_bench" --benchmark_filter='BM_(KernelLogLine|NftMonitorLine|ExplainLog)' \
	--benchmark_min_time=0.5 --benchmark_format=console 2>/dev/null | grep '^BM_')

# "seconds peak_rss_kB" of one run of natbpf explain --log FILE --json.
# Peak RSS as GNU time reports it (the kernel's high-water mark at exit);
# without GNU time, VmHWM read from /proc until the process exits, which
# can miss a peak of its last 20 ms.
measure() {
	local log=$1 pid hwm=0 now status t0 t1
	if /usr/bin/time --version >/dev/null 2>&1; then
		/usr/bin/time -o "$work/time" -f '%e %M' "$build/natbpf" explain --log "$log" --ruleset "$ruleset" --json >/dev/null
		cat "$work/time"
		return
	fi
	t0=$(date +%s%N)
	"$build/natbpf" explain --log "$log" --ruleset "$ruleset" --json >/dev/null &
	pid=$!
	while status=$(cat "/proc/$pid/status" 2>/dev/null) && [[ $status != *$'\nState:\tZ'* ]]; do
		now=$(awk '/^VmHWM/ {print $2}' <<<"$status")
		[ -z "$now" ] || hwm=$now
		sleep 0.02
	done
	wait "$pid"
	t1=$(date +%s%N)
	echo "$(awk -v ns=$((t1 - t0)) 'BEGIN {printf "%.2f", ns / 1e9}') $hwm"
}

rows=() rates=() peaks=()
for lines in "$small" "$large"; do
	bash "$here/gen_trace_log.sh" "$lines" >"$work/kern.log"
	measure "$work/kern.log" >/dev/null # warm-up: page cache
	read -r secs rss < <(measure "$work/kern.log")
	rates+=("$(awk -v n="$lines" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')")
	peaks+=("$((rss / 1024))")
	rows+=("| $lines | $(du -m "$work/kern.log" | cut -f1) MB | $secs | ${rates[-1]} | ${peaks[-1]} MB |")
	rm -f "$work/kern.log"
done
slowest=$(printf '%s\n' "${rates[@]}" | sort -n | head -1)
if [ "$slowest" -ge 1000000 ]; then speed="met ($slowest lines/s at the slowest)"; else speed="not met: $slowest lines/s"; fi

cat <<EOF
## Saved logs (explain --log)

Targets: at least 1 million log lines per second, and memory bounded by the
packets open at one moment (and the 65536 paths remembered to tell repeats),
not by the size of the log: peak RSS must not grow with it (the two logs
below are four times apart).

Per line and whole pipeline (bench/bench_logs.cpp): one kernel log TRACE
line, one \`nft monitor trace\` line, and LogReplay over a generated log of
200000 lines (the seed 003 packets of tests/unit/fixtures/logs with their own
IP ids, ports and sequence numbers, 1000 packets per second of log time; the
nft fixture's packets with new trace ids) with grouping, journeys,
explanations and rendering (/0 text, /1 JSON) into a null stream;
items_per_second is lines per second:

\`\`\`
$micro
\`\`\`

The whole command, \`natbpf explain --log FILE --ruleset
seed003-iptables-save.txt --json >/dev/null\`, over logs of bench/gen_trace_log.sh
(second of two runs, the file in the page cache; peak RSS is the kernel's
high-water mark, as GNU time or /proc VmHWM give it):

| lines | size | seconds | lines/s | peak RSS |
|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")

Whole command against the targets: 1 million lines per second $speed;
peak RSS ${peaks[0]} MB at $small lines, ${peaks[1]} MB at $large.
EOF

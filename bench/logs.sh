#!/usr/bin/env bash
# `natbpf explain --log` over saved logs: prints the "Saved logs" section of
# docs/benchmarks.md (scripts/bench.sh includes it; it also runs alone).
# Google Benchmark rows of bench/bench_logs.cpp, then the whole command over
# generated kernel TRACE logs (bench/gen_trace_log.sh) of two sizes, told as
# text and as JSON, and over an nft monitor trace log
# (bench/gen_nft_trace_log.sh): lines per second and peak RSS, which must
# not grow with the log.
# Usage: bench/logs.sh BUILD_DIR [LINES_SMALL LINES_LARGE]
set -euo pipefail
build=${1:?usage: bench/logs.sh BUILD_DIR [LINES_SMALL LINES_LARGE]}
small=${2:-1000000}
large=${3:-4000000}
here=$(cd "$(dirname "$0")" && pwd)
ruleset=$here/../tests/unit/fixtures/logs/seed003-iptables-save.txt
nft_ruleset=$here/../tests/unit/fixtures/nft_monitor_trace.ruleset.txt
work=$(mktemp -d "${TMPDIR:-/tmp}/natbpf-logs.XXXXXX")
trap 'rm -rf "$work"' EXIT

micro=$("$build/natbpf_bench" --benchmark_filter='BM_(KernelLogLine|NftMonitorLine|ExplainLog)' \
	--benchmark_min_time=0.5 --benchmark_format=console 2>/dev/null | grep '^BM_')

# "seconds peak_rss_kB" of one run of natbpf explain --log LOG --ruleset
# RULESET [--json]. Peak RSS as GNU time reports it (the kernel's
# high-water mark at exit); without GNU time, VmHWM read from /proc until
# the process exits, which can miss a peak of its last 20 ms.
measure() {
	local log=$1 rules=$2 pid hwm=0 now status t0 t1
	shift 2
	if /usr/bin/time --version >/dev/null 2>&1; then
		/usr/bin/time -o "$work/time" -f '%e %M' "$build/natbpf" explain --log "$log" --ruleset "$rules" "$@" >/dev/null
		cat "$work/time"
		return
	fi
	t0=$(date +%s%N)
	"$build/natbpf" explain --log "$log" --ruleset "$rules" "$@" >/dev/null &
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

# One table row: a warm-up run (the file into the page cache), then the
# median time of $runs runs and the largest peak RSS among them.
runs=3
row() {
	local input=$1 log=$2 rules=$3 lines=$4 output=$5 secs rss times=() peak=0
	for _ in $(seq 0 "$runs"); do
		read -r secs rss < <(measure "$log" "$rules" ${output:+--$output})
		times+=("$secs")
		[ "$rss" -le "$peak" ] || peak=$rss
	done
	secs=$(printf '%s\n' "${times[@]:1}" | sort -n | sed -n "$(((runs + 1) / 2))p")
	rate=$(awk -v n="$lines" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')
	peak=$((peak / 1024))
	echo "| $input | ${output:-text} | $lines | $(du -m "$log" | cut -f1) MB | $secs | $rate | $peak MB |"
}

# The target is read on the kernel log told as text, at both sizes.
rows=() rates=() peaks=()
for lines in "$small" "$large"; do
	bash "$here/gen_trace_log.sh" "$lines" >"$work/kern.log"
	for output in "" json; do
		r=$(row "kernel log" "$work/kern.log" "$ruleset" "$lines" "$output")
		rows+=("$r")
		if [ -z "$output" ]; then
			rates+=("$(cut -d'|' -f7 <<<"$r" | tr -d ' ')")
			peaks+=("$(cut -d'|' -f8 <<<"$r" | tr -dc '0-9')")
		fi
	done
	rm -f "$work/kern.log"
done
bash "$here/gen_nft_trace_log.sh" "$small" >"$work/nft.log"
for output in "" json; do
	rows+=("$(row "nft monitor trace" "$work/nft.log" "$nft_ruleset" "$small" "$output")")
done
rm -f "$work/nft.log"
slowest=$(printf '%s\n' "${rates[@]}" | sort -n | head -1)
if [ "$slowest" -ge 1000000 ]; then speed="met ($slowest lines/s at the slowest)"; else speed="not met: $slowest lines/s"; fi
json_rates=$(printf '%s\n' "${rows[@]}" | awk -F'|' '$2 ~ /kernel/ && $3 ~ /json/ {gsub(/ /, "", $7); printf "%s%s", sep, $7; sep = " and "}')
nft_rates=$(printf '%s\n' "${rows[@]}" | awk -F'|' '$2 ~ /nft/ {gsub(/ /, "", $7); gsub(/ /, "", $3); printf "%s%s (%s)", sep, $7, $3; sep = ", "}')
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null)

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
items_per_second is lines per second of wall time (real_time: LogReplay
uses three threads):

\`\`\`
$micro
\`\`\`

The whole command, \`natbpf explain --log FILE --ruleset RULESET
[--json] >/dev/null\`, over kernel logs of bench/gen_trace_log.sh (ruleset
seed003-iptables-save.txt) and an nft monitor trace log of
bench/gen_nft_trace_log.sh (ruleset nft_monitor_trace.ruleset.txt): median
of $runs runs after a warm-up (the file in the page cache), build type
${build_type:-unknown}; peak RSS is the largest of those runs' high-water
marks, as GNU time or /proc VmHWM give it. The command reads and parses the
log on one thread, groups, explains and counts on a second, and renders and
writes on a third, so it needs both cores of this 2-core machine, which
other work shares: a busy machine gives lower figures.

| input | output | lines | size | seconds | lines/s | peak RSS |
|---|---|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")

Whole command against the targets: 1 million lines per second (kernel log,
text) $speed; with --json $json_rates lines/s; the nft monitor trace log
$nft_rates lines/s. Peak RSS ${peaks[0]} MB at $small lines, ${peaks[1]} MB
at $large.
EOF

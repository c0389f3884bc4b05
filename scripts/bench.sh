#!/usr/bin/env bash
# Runs the benchmarks and writes docs/benchmarks.md: user-space pipeline
# throughput (Google Benchmark) and kernel-side overhead (bench/overhead.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target natbpf natbpf_bench udpflood >/dev/null
micro=$(./build/natbpf_bench --benchmark_min_time=0.5 --benchmark_format=console 2>/dev/null | grep '^BM_')
overhead=$(bash bench/overhead.sh build 200000)
base=$(awk '$1=="baseline"{print $2}' <<<"$overhead")
{
	echo "# natbpf benchmarks"
	echo
	echo "Measured $(date -u +%Y-%m-%d) on $(uname -r), $(nproc) cores, by \`scripts/bench.sh\`."
	echo
	echo "## User-space pipeline (per event, bench/bench_pipeline.cpp)"
	echo
	echo '```'
	echo "$micro"
	echo '```'
	echo
	echo "## Kernel-side overhead (bench/overhead.sh)"
	echo
	echo "UDP datagrams per second sent into an nftables drop rule in a namespace"
	echo "(median of 5 runs of 200000 packets; every packet is dropped, so the"
	echo "kfree_skb program runs for each: the worst case for natbpf)."
	echo
	echo "| run | packets/s | vs baseline |"
	echo "|---|---|---|"
	while read -r label pps; do
		echo "| $label | $pps | $(awk -v a="$pps" -v b="$base" 'BEGIN{printf "%.0f%%", 100*a/b}') |"
	done <<<"$overhead"
} >docs/benchmarks.md
cat docs/benchmarks.md

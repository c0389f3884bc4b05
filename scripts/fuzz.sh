#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, NATBPF_FUZZ=ON, in
# build-fuzz) and runs each for SECONDS_EACH seconds (default 600) on a copy
# of its seed corpus tests/fuzz/corpus/<target>, at most NATBPF_FUZZ_JOBS
# (default 2) at a time. Prints per target the executions reached and the
# crashes (crash, leak, timeout or out-of-memory inputs, kept under
# build-fuzz/fuzz-runs/<target>/); exits 1 if there was any.
# A run of every target writes docs/fuzzing.md, unless NATBPF_FUZZ_DOC=0.
#   scripts/fuzz.sh [SECONDS_EACH] [TARGET...]     e.g. scripts/fuzz.sh 30 fuzz_nftrace
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
shift || true
jobs=${NATBPF_FUZZ_JOBS:-2}
all=(tests/fuzz/fuzz_*.cpp)
all=("${all[@]##*/}")
all=("${all[@]%.cpp}")
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	-DNATBPF_FUZZ=ON -DNATBPF_WERROR=ON -DNATBPF_TESTS=OFF -DNATBPF_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target "${targets[@]}"

runs=build-fuzz/fuzz-runs
run_one() {
	local t=$1 dir=$runs/$1
	rm -rf "$dir"
	mkdir -p "$dir/corpus"
	cp tests/fuzz/corpus/"$t"/* "$dir/corpus/"
	# -close_fd_mask=3: the targets print what natbpf prints; libFuzzer and
	# the sanitizers still report on their own descriptor.
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "build-fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -close_fd_mask=3 \
		-print_final_stats=1 -artifact_prefix="$dir/" "$dir/corpus" >"$dir/log" 2>&1 || true
}

echo "== fuzzing ${targets[*]} for ${seconds} s each, $jobs at a time"
for t in "${targets[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
	run_one "$t" &
done
wait

# One row per target: execs, execs/s, corpus growth, peak RSS, crashes.
stat() { sed -n "s/^stat::$2: *//p" "$runs/$1/log" | tail -1; }
crashes=0
rows=()
for t in "${targets[@]}"; do
	found=$(find "$runs/$t" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) |
		wc -l)
	execs=$(stat "$t" number_of_executed_units)
	[ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$runs/$t/log" | tail -1 | tr -d '#')
	rows+=("| $t | ${execs:-0} | $(stat "$t" average_exec_per_sec) | $(stat "$t" new_units_added) | $(stat "$t" peak_rss_mb) | $found |")
	if [ "$found" -gt 0 ]; then
		crashes=$((crashes + found))
		echo "!! $t: $found crashing inputs in $runs/$t (log: $runs/$t/log)"
		grep -m3 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error' "$runs/$t/log" || true
	fi
done

table() {
	echo "| target | execs | execs/s | new corpus units | peak RSS MB | crashes |"
	echo "|---|---|---|---|---|---|"
	printf '%s\n' "${rows[@]}"
}
table

if [ "${NATBPF_FUZZ_DOC:-1}" = 1 ] && [ "$*" = "" ]; then
	{
		echo "# Fuzzing natbpf's parsers"
		echo
		echo "Measured $(date -u +%F) on $(uname -r), $(nproc) cores ($jobs targets at a time),"
		echo "$(clang++ --version | head -1), by \`scripts/fuzz.sh $seconds\`: each target ran"
		echo "${seconds} s on a copy of its seed corpus (tests/fuzz/corpus/<target>)."
		echo
		echo "Each target (tests/fuzz/fuzz_*.cpp) is built with"
		echo "\`-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all\`; natbpf_core"
		echo "with \`-fsanitize=fuzzer-no-link,address,undefined\`. A crash is any input that"
		echo "made AddressSanitizer, UndefinedBehaviorSanitizer or LeakSanitizer report,"
		echo "took more than 10 s, or needed more than 2 GB."
		echo
		echo "- fuzz_nftrace: nftables trace datagrams (parse_nftrace_datagram)"
		echo "- fuzz_nflog: NFLOG datagrams of iptables-legacy TRACE (parse_nflog_datagram)"
		echo "- fuzz_ctnetlink: ctnetlink replies, conntrack entries and per-CPU stats"
		echo "- fuzz_bpf_record: ring-buffer records (decode_bpf_record)"
		echo "- fuzz_recording: \`natbpf explain\` of trace, clash and drops recordings"
		echo "- fuzz_iptables_save: \`iptables-save [-c]\` text (counters, NAT rules, legacy chains)"
		echo "- fuzz_nft_ruleset: \`nft -a list ruleset\` text (Ruleset::parse, NAT rules)"
		echo "- fuzz_kernel_log: kernel log lines of TRACE and conntrack INVALID with syslog, dmesg and journal"
		echo "  prefixes (parse_kernel_log_line, kernel_log_time, parse_trace_prefix)"
		echo "- fuzz_nflog_pcap: NFLOG records of \`tcpdump -i nflog\` captures (parse_nflog_pcap_packet)"
		echo "- fuzz_ulogd_json: ulogd2 JSON lines (parse_ulogd_json_line)"
		echo "- fuzz_nft_monitor_text: \`nft monitor trace\` text (NftMonitorTextParser)"
		echo
		table
		echo
		echo "The goal is 0 crashes in 10 M executions per target; a row below 10 M has not"
		echo "reached it yet (run \`scripts/fuzz.sh SECONDS\` longer)."
	} >docs/fuzzing.md
	echo "== wrote docs/fuzzing.md"
fi

if [ "$crashes" -gt 0 ]; then
	echo "fuzz: $crashes crashing inputs" >&2
	exit 1
fi
echo "fuzz: no crashes"

#!/usr/bin/env bash
# A large `nft monitor trace` log for bench/logs.sh: the packets of
# tests/unit/fixtures/nft_monitor_trace.txt over and over, each copy with
# its own trace ids, IP ids and source ports (nft prints no time). Like the
# log bench/bench_logs.cpp generates in memory, with trace ids offset rather
# than XORed (mawk has no xor).
# Usage: bench/gen_nft_trace_log.sh LINES >FILE
set -euo pipefail
lines=${1:?usage: bench/gen_nft_trace_log.sh LINES >FILE}
seed="$(dirname "$0")/../tests/unit/fixtures/nft_monitor_trace.txt"
awk -v lines="$lines" '
	function hexval(s,    i, v) {
		v = 0
		for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
		return v
	}
	NF { tmpl[n++] = $0 }
	END {
		out = 0
		for (copy = 0; out < lines; copy++) {
			for (i = 0; i < n && out < lines; i++) {
				nf = split(tmpl[i], w, " ")
				line = ""
				for (f = 1; f <= nf; f++) {
					v = w[f]
					if (f > 2 && w[f - 2] == "trace" && w[f - 1] == "id")
						v = sprintf("%08x", (hexval(v) + copy * 2654435761) % 4294967296)
					else if (f > 2 && w[f - 2] == "ip" && w[f - 1] == "id") v = (v + copy) % 65536
					else if (f > 2 && w[f - 2] == "tcp" && w[f - 1] == "sport") v = 1024 + (v + copy) % 64000
					line = line (f > 1 ? " " : "") v
				}
				print line
				out++
			}
		}
	}' "$seed"

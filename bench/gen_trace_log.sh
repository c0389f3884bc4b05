#!/usr/bin/env bash
# A large kernel log of iptables TRACE lines for bench/logs.sh: the two
# packets of tests/unit/fixtures/logs/seed003-kern.log (45 lines) over and
# over, each copy with its own IP ids, source ports and TCP sequence numbers,
# 500 copies (1000 packets) per second of syslog time. The same log as
# bench/bench_logs.cpp generates in memory.
# Usage: bench/gen_trace_log.sh LINES >FILE
set -euo pipefail
lines=${1:?usage: bench/gen_trace_log.sh LINES >FILE}
seed="$(dirname "$0")/../tests/unit/fixtures/logs/seed003-kern.log"
awk -v lines="$lines" '
	NF { tmpl[n++] = $0 }
	END {
		out = 0
		for (copy = 0; out < lines; copy++) {
			sec = 21 * 3600 + int(copy / 500)
			stamp = sprintf("Jan  1 %02d:%02d:%02d", int(sec / 3600) % 24, int(sec / 60) % 60, sec % 60)
			for (i = 0; i < n && out < lines; i++) {
				nf = split(tmpl[i], w, " ")
				line = stamp
				for (f = 4; f <= nf; f++) {
					v = w[f]
					if (v ~ /^ID=/) v = "ID=" ((substr(v, 4) + copy) % 65536)
					else if (v ~ /^SPT=/) v = "SPT=" (1024 + (substr(v, 5) + copy) % 64000)
					else if (v ~ /^SEQ=/) v = sprintf("SEQ=%.0f", (substr(v, 5) + copy * 7919) % 4294967296)
					line = line " " v
				}
				print line
				out++
			}
		}
	}' "$seed"

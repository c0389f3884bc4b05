#!/usr/bin/env bash
# Runs the benchmarks and writes docs/benchmarks.md: user-space pipeline
# throughput (Google Benchmark), saved logs told by explain --log
# (bench/logs.sh), metrics scrapes (bench/scrape.sh), trace on kube-proxy
# nodes of 2k/20k/100k rules (bench/nodesize.sh), clash's range usage
# beside a big conntrack table (bench/conntrack_scale.sh), kernel-side
# overhead (bench/overhead.sh) and kernel time per BPF program run
# (bench/progcost.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target natbpf natbpf_bench ct_range udpflood udpsink kfree_floor >/dev/null
# The saved-log benchmarks of bench/bench_logs.cpp have their own section (bench/logs.sh).
micro=$(./build/natbpf_bench --benchmark_filter='-BM_(KernelLogLine|NftMonitorLine|ExplainLog)' \
	--benchmark_min_time=0.5 --benchmark_format=console 2>/dev/null | grep '^BM_')
logs=$(bash bench/logs.sh build)
overhead=$(bash bench/overhead.sh build 100000)
progcost=$(bash bench/progcost.sh build 200000)
startup=$(bash bench/startup.sh build 7)
scrape=$(bash bench/scrape.sh build 9 1 25 100 500)
ctscale=$(bash bench/conntrack_scale.sh build 9 0 200000 | tail -n +2)
nodesize=$(bash bench/nodesize.sh build | grep -v '^#')
{
	echo "# natbpf benchmarks"
	echo
	echo "Measured $(date -u +%Y-%m-%d) on $(uname -r), $(nproc) cores, by \`scripts/bench.sh\`."
	echo
	echo "## User-space pipeline (per event, bench/bench_pipeline.cpp)"
	echo
	echo "Per ring-buffer record decoded, nftables trace message parsed, and packet"
	echo "joined (four trace messages and a kfree_skb record into a journey);"
	echo "BM_TraceStoryPerPacket is the whole path of a traced packet: its messages"
	echo "parsed, joined, explained against a ruleset (rule texts, a near miss) and"
	echo "rendered as text, each packet a new flow told in full."
	echo
	echo '```'
	echo "$micro"
	echo '```'
	echo
	echo "$logs"
	echo
	echo "## Start-up and memory (bench/startup.sh)"
	echo
	echo "From exec to ready (the --ready-file appears once every hook is attached"
	echo "and every source listens) and peak RSS (VmHWM) over a 1 s run; median of 7"
	echo "runs after a warm-up; trace and clash in an empty namespace, drops over the"
	echo "host. Targets: ready < 250 ms, peak RSS < 25 MB."
	echo
	echo "| job | ready (ms) | peak RSS |"
	echo "|---|---|---|"
	while read -r job ms rss; do
		echo "| $job | $ms | $((rss / 1024)) MB |"
	done <<<"$startup"
	echo
	echo "## Metrics scrapes (bench/scrape.sh)"
	echo
	echo "What one GET /metrics of \`natbpf drops --prometheus\` costs, median of 9"
	echo "scrapes 1.2 s apart, with N namespaces that each drop in a counted nftables"
	echo "rule (a refresh reads every namespace's rule and conntrack counters). A"
	echo "scrape wakes natbpf's event loop (an eventfd) and waits for its report;"
	echo "CPU is natbpf's utime+stime beyond its idle rate (10 ms resolution)."
	echo "Scrapes within a second of the last refresh are answered from it."
	echo
	echo "| namespaces | latency (ms) | natbpf CPU per scrape (ms) | drop series | body (bytes) |"
	echo "|---|---|---|---|---|"
	while read -r n ms cpu series bytes; do
		echo "| $n | $ms | $cpu | $series | $bytes |"
	done <<<"$scrape"
	echo
	echo "## Trace on a node's worth of rules (bench/nodesize.sh)"
	echo
	echo "\`natbpf trace --netns NODE --dport 52000 --duration 10s\` in the seed 003"
	echo "incident inside a kube-proxy-shaped ruleset (scripts/scenarios/kubeproxy.sh)"
	echo "per backend and size; two connection attempts, each a SYN and its"
	echo "retransmission, all dropped. ready: exec to ready file; CPU: natbpf's"
	echo "utime+stime as % of one core, over the whole run and over ready to exit;"
	echo "peak RSS: VmHWM; told: packet stories / SYNs sent; right rule: every story"
	echo "names the drop rule. Targets (issue 14): ready < 250 ms, < 5 % of a core"
	echo "while tracing, peak RSS < 40 MB, every SYN told once by the right rule."
	echo
	echo "| backend | rules | ready (ms) | CPU % | CPU % tracing | peak RSS | told | right rule | setup (ms) |"
	echo "|---|---|---|---|---|---|---|---|---|"
	while read -r backend rules ready cpu rss stories syns right cput setup; do
		[ "$rss" = - ] || rss="$((rss / 1024)) MB"
		echo "| $backend | $rules | $ready | $cpu | $cput | $rss | $stories / $syns | $right | $setup |"
	done <<<"$nodesize"
	echo
	echo "## Clash range usage beside a big conntrack table (bench/conntrack_scale.sh)"
	echo
	echo "What \`natbpf clash\` spends per report counting how much of a SNAT range one"
	echo "destination uses, median and max of 9 counts, with the range's ports all"
	echo "taken and 0 or 200000 unrelated UDP entries beside them in the namespace:"
	echo "ct_range_usage (one lookup per tuple up to 4096 tuples, else a dump the"
	echo "kernel filters on the reply source) against the full-table dump clash read"
	echo "per report before."
	echo
	echo "| entries | range | method | used | median (ms) | max (ms) | how |"
	echo "|---|---|---|---|---|---|---|"
	while read -r n range method used med mx how; do
		echo "| $n | ${range/_/ } | $method | $used | $med | $mx | $how |"
	done <<<"$ctscale"
	echo
	echo "## Kernel-side overhead (bench/overhead.sh)"
	echo
	echo "UDP datagrams per second one sender, pinned to one core, pushes through"
	echo "each topology with the row's program running, against the same sender"
	echo "without it. Each row is 9 rounds (21 for the rows of natbpf's targets:"
	echo "trace, trace-table, clash-conntrack, trace-forward, trace-table-forward)"
	echo "of two floods of 100000 packets, one"
	echo "without the program and one with it (started afresh, flooded 0.5 s after"
	echo "it is ready, so what start-up and exit leave the kernel to do is not"
	echo "counted here: bench/startup.sh times start-up), in alternating order; the"
	echo "figure is the median of the rounds' ratios, and the spread the middle"
	echo "half of them (25th to 75th percentile). Topologies:"
	echo
	echo "- drop flood (no suffix): into an nftables drop rule in a namespace; every"
	echo "  packet is dropped, so the kfree_skb program runs for each (the worst case);"
	echo "- \`-conntrack\`: the same in a namespace that tracks connections, so each"
	echo "  dropped packet has an unconfirmed conntrack entry (what \`natbpf clash\` examines);"
	echo "- \`-forward\`: through a veth pair into a router namespace that DNATs it and"
	echo "  forwards it over a second veth pair to a receiver (bench/udpsink): conntrack"
	echo "  and NAT on every packet, no drop by design."
	echo
	echo "\`floor\` is a peer: an empty tp_btf program on kfree_skb (bench/kfree_floor),"
	echo "the cost any per-drop program pays here before it does anything."
	echo "\`nftrace-key\` is one \`meta nftrace set 1\` rule in a chain without a hook"
	echo "in another namespace: no packet meets it, but it turns on nf_tables' trace"
	echo "static key, and from then on every nftables chain a packet enters, in every"
	echo "namespace, computes a trace id for it (\`nft_trace_init\`: the packet's flow"
	echo "hash, dissecting the packet when it has none, and a siphash), traced or not."
	echo "\`floor-nftrace-key\` is both at once: the cheapest any tool built on kfree_skb"
	echo "and the nftables trace can be, \`trace\` included. The peers"
	echo "users run instead, in the same run: \`nft-monitor-trace\` (a trace-everything"
	echo "rule, \`meta nftrace set 1\` in prerouting and output, with \`nft monitor trace\`"
	echo "listening), \`iptables-trace-nflog\` (iptables-legacy \`-j TRACE\` in raw"
	echo "PREROUTING and OUTPUT, the namespace's nf_log bound to nfnetlink_log, and"
	echo "\`tcpdump -i nflog:0\` listening) and \`bpftrace-kfree_skb\` (a one-liner"
	echo "counting skb:kfree_skb by reason, in a per-CPU map)."
	echo "\`drops-prometheus-scraped\` is the exporter while curl scrapes /metrics"
	echo "every second. \`trace\` waits for its flow's first packet with the trace"
	echo "key off: its marking rules queue a matching packet to natbpf (NFQUEUE),"
	echo "and only that packet turns tracing on and attaches trace's BPF programs"
	echo "(no packet of the flood matches, so they stay detached)."
	echo "\`trace-no-hold\` is \`trace --no-hold\`, tracing from the start: compare"
	echo "it with \`floor-nftrace-key\`, its floor. Targets (issue 12): trace >= 97 %"
	echo "forwarded and >= 95 % on the drop flood, clash-conntrack >= 90 %."
	echo
	echo "| run | packets/s | baseline packets/s | vs baseline | spread | natbpf peak RSS |"
	echo "|---|---|---|---|---|---|"
	while read -r label pps bpps ratio lo hi rss; do
		[ "$rss" = - ] || rss="$((rss / 1024)) MB"
		echo "| $label | $pps | $bpps | $ratio % | $lo-$hi % | $rss |"
	done <<<"$overhead"
	echo
	echo "## Kernel time per BPF program run (bench/progcost.sh)"
	echo
	echo "The same floods, with \`kernel.bpf_stats_enabled=1\`: the kernel's own"
	echo "run_cnt and run_time_ns of each program the job attached, over one flood of"
	echo "200000 packets (the nftables chains \`trace\` adds are not in these figures,"
	echo "only in the packet rates above)."
	echo
	echo "| run | program | runs | ns per run |"
	echo "|---|---|---|---|"
	awk '$2 != "flood" {print "| " $1 " | " $2 " | " $3 " | " $4 " |"}' <<<"$progcost"
	cat <<'NOTES'

Notes:
- `drops` counts every drop in the kernel (a per-CPU hash keyed by namespace,
  family, hook, reason, location, protocol, port and conntrack state) and sends
  one example packet per key, CPU and second; on tp_btf the key is read with
  direct loads and a single header read. Its cost over `floor` is what the
  program does; `floor` itself is the price of a program on every freed packet.
- `clash` sets `BPF_RB_NO_WAKEUP` on its records, reads the ring buffer on its
  100 ms tick, and is woken early only when a quarter of the ring is waiting
  (`bpf_ringbuf_query`).
- `clash` tells a firewall drop of a new connection from an insert failure
  in the kernel: kfree_skb reads conntrack's per-CPU `insert_failed` (and
  `drop`, for packets without an entry) of the packet's namespace and lets
  a drop through only when it rose on that CPU since the last one; the rest
  are counted, never recorded, and appear in the summary's unattributed drops.
- `trace-no-hold` cost has three parts: the nftables trace static key its
  marking rule turns on (the `nftrace-key` row: every nftables chain of the
  host computes a trace id for every packet while natbpf traces, the drop
  flood's own drop chain too); the kernel evaluating natbpf's marking table (two
  marking chains and two fate chains, each a chain more that computes that
  id), whose rule tests the port first (the protocol set only for packets
  that have the port); and the kfree_skb program, which rejects every skb
  natbpf did not trace on its `nf_trace` bit (a direct load on tp_btf) before
  it reads any header. `trace` pays only the second, natbpf's marking table,
  until its flow's first packet: its idle marking rules queue that packet
  instead of tracing it, and its BPF programs are attached only while it traces.
- Numbers are from a 2-core VM shared with other work; compare rows within
  one run, not across runs.
NOTES
} >docs/benchmarks.md
cat docs/benchmarks.md

#!/usr/bin/env bash
# The seed 001 incident, explained by natbpf: `ssh -p 1222 10.1.2.3` times out.
# Builds natbpf if needed, builds the incident in network namespaces, runs
# `natbpf trace --dport 1222` while a client connects, applies the fix the
# story points to, connects again, and removes everything it created.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/natbpf ] || { cmake -S . -B build >/dev/null && cmake --build build -j"$(nproc)" >/dev/null; }
source scripts/scenarios/seed001.sh

p=nbdemo$$
tmp=$(mktemp -d)
tracer=""
listener=""
cleanup() {
	[ -n "$tracer" ] && kill -INT "$tracer" 2>/dev/null && wait "$tracer" 2>/dev/null
	[ -n "$listener" ] && kill "$listener" 2>/dev/null
	seed001_down "$p"
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "== building the incident: client 10.2.1.2 -> host 10.1.2.3:1222 (DNAT) -> container 192.168.70.10:22"
seed001_up "$p" nft
listener=$(seed001_listen "$p")
ip netns exec "$p-host" nft list ruleset

echo "== natbpf trace --netns $p-host --dport 1222"
./build/natbpf trace --netns "$p-host" --dport 1222 --ready-file "$tmp/ready" > >(tee "$tmp/stories") &
tracer=$!
for _ in $(seq 300); do [ -e "$tmp/ready" ] && break; sleep 0.1; done

echo "== client: ssh -p 1222 10.1.2.3 (times out)"
seed001_connect "$p" 3 || true
sleep 0.5
fix=""
for _ in $(seq 50); do
	fix=$(sed -n 's/^ *fix: //p' "$tmp/stories" | head -1)
	[ -n "$fix" ] && break
	sleep 0.1
done
[ -n "$fix" ] || { echo "natbpf gave no fix line" >&2; exit 1; }
echo "== applying the fix natbpf printed: $fix"
sh -c "$fix"
echo "== client again"
seed001_connect "$p" 3 || true
sleep 1
kill -INT "$tracer"
wait "$tracer" || true
tracer=""

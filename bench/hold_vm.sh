#!/usr/bin/env bash
# bench/hold.sh inside the VM harness (scripts/vm-test.sh): what the hold
# costs the held packet where trace's BPF programs are fentry/fexit
# programs or kprobes, attached while the packet waits (6.1 fentry, 6.12
# kprobes). The VM carries tests/ and the binary, not bench/: the script
# goes in on the command line. Emulated (no KVM): compare the rows with
# each other, not with the host's.
# Prints per kernel and path: KERNEL PATH MODE FIRST_MS OTHERS_MS.
# Usage: bench/hold_vm.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-7}
script=$(base64 -w0 bench/hold.sh)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for run in "6.1 fentry" "6.12 kprobe"; do
	read -r kernel path <<<"$run"
	extra=()
	[ "$path" = kprobe ] && extra=(--env NATBPF_NO_FENTRY=1)
	scripts/vm-test.sh --kernel "$kernel" --quiet --log "$log" --timeout 900 --env NATBPF_EXPECT_PATH="$path" "${extra[@]}" \
		-- "mkdir -p /natbpf/bench; echo $script | base64 -d >/natbpf/bench/hold.sh; bash /natbpf/bench/hold.sh /natbpf/build $rounds" \
		>/dev/null 2>&1 || { echo "bench/hold_vm.sh: the $kernel VM failed (log: $log)" >&2; trap - EXIT; exit 1; }
	grep -aE '^(hold|no-hold) ' "$log" | sed "s/^/$kernel $path /" ||
		{ echo "bench/hold_vm.sh: no figures from the $kernel VM (log: $log)" >&2; trap - EXIT; exit 1; }
done

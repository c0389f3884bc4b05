#!/usr/bin/env bash
# The whole test suite: build, unit tests (no root), scenario tests on this
# kernel (tracepoint path), then the VM kernel matrix (fentry and kprobe
# paths). Needs root and the packages of scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

echo "== unit tests"
ctest --test-dir build --output-on-failure -j"$(nproc)"

echo "== scenarios on this kernel ($(uname -r))"
NATBPF_EXPECT_PATH=tracepoint bash tests/scenarios/run.sh "$PWD/build/natbpf"

if [ "${NATBPF_SKIP_VM:-0}" = 1 ]; then
	echo "== VM matrix skipped (NATBPF_SKIP_VM=1)"
else
	echo "== VM matrix"
	bash tests/vm/run.sh
fi

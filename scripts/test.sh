#!/usr/bin/env bash
# The whole test suite: build, unit tests (no root), a Release build and the
# unit tests under ASan+UBSan (warnings are errors in all three), the fuzz
# targets for 30 s each, scenario
# tests on this kernel (tracepoint path; among them `package`: cpack -G DEB of
# build/ installed with dpkg into a scratch root), then the VM kernel matrix (fentry
# and kprobe paths). Needs root and the packages of scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNATBPF_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"

echo "== deploy manifests (the Containerfile's runtime packages exist and cover build/natbpf's libraries; deploy/*.yaml valid against the Kubernetes schemas, strict, and consistent with build/natbpf's options)"
bash tests/deploy/check_containerfile.sh build/natbpf
# Debian's python3-jsonschema and python3-yaml: /usr/bin/python3, not a
# python3 earlier on PATH (a pyenv one has neither).
/usr/bin/python3 tests/deploy/validate.py build/natbpf --self-test

echo "== size limits (files <= 500 lines, functions <= 80)"
bash scripts/check-size.sh

echo "== unit tests"
ctest --test-dir build --output-on-failure -j"$(nproc)"

# Release (-O3) sees warnings -O2 does not (GCC 12 -Wrestrict).
echo "== release build"
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DNATBPF_WERROR=ON -DNATBPF_BENCH=OFF >/dev/null
cmake --build build-release -j"$(nproc)" --target natbpf natbpf_unit_tests

# Debug (-O0 -g): with the sanitizers GCC 12 needs about 3 CPU-minutes for
# these two targets, against 19 at the default -O2 -g; optimising would only
# let the compiler remove some undefined behaviour before it is checked.
echo "== unit tests under ASan+UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNATBPF_SANITIZE=ON -DNATBPF_WERROR=ON -DNATBPF_BENCH=OFF >/dev/null
cmake --build build-asan -j"$(nproc)" --target natbpf natbpf_unit_tests
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ctest --test-dir build-asan --output-on-failure -j"$(nproc)"

# libFuzzer targets of tests/fuzz, 30 s each (two at a time): a smoke test
# that every parser still survives its seeds and a few minutes of mutations.
# The long runs are scripts/fuzz.sh's job; docs/fuzzing.md is not rewritten.
echo "== fuzzing, 30 s per target"
NATBPF_FUZZ_DOC=0 bash scripts/fuzz.sh 30

echo "== scenarios on this kernel ($(uname -r))"
NATBPF_EXPECT_PATH=tracepoint bash tests/scenarios/run.sh "$PWD/build/natbpf"

if [ "${NATBPF_SKIP_VM:-0}" = 1 ]; then
	echo "== VM matrix skipped (NATBPF_SKIP_VM=1)"
else
	echo "== VM matrix"
	bash tests/vm/run.sh
fi

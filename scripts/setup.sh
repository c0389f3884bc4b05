#!/usr/bin/env bash
# Installs every Debian 12 package natbpf needs to build, test and demo. Idempotent:
# packages already present are not touched and apt is not even updated.
# --build-only: just what building natbpf needs (deploy/Containerfile's build stage).
set -euo pipefail

build_packages=(
	# build
	build-essential cmake pkg-config clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev
	libmnl-dev libnftnl-dev libnftables-dev libcli11-dev nlohmann-json3-dev libpcap-dev
	# the metrics exporter (natbpf drops --prometheus): HTTP server library
	libcivetweb-dev
)
packages=(
	"${build_packages[@]}"
	# packaging: cpack -G DEB runs dpkg-shlibdeps; the package scenario reads the man page
	dpkg-dev man-db
	# tests and benchmarks
	libgtest-dev libgmock-dev libbenchmark-dev python3
	# exporter and packaging tests: a real Prometheus text parser, Kubernetes schema validation
	python3-prometheus-client python3-jsonschema
	# fuzzing (scripts/fuzz.sh): libFuzzer and the sanitizer runtimes of clang 14
	libclang-rt-14-dev
	# scenarios and demo
	iproute2 nftables iptables conntrack netcat-openbsd socat jq
	# the saved logs explain --log reads, captured for real: NFLOG pcap, ulogd2 JSON
	tcpdump ulogd2 ulogd2-json
	# VM matrix
	qemu-system-x86 busybox-static cpio kmod zstd xz-utils
	# deploy: scripts/deploy-rss.sh (/usr/bin/time -v), tests/deploy (manifests read as YAML)
	time python3-yaml
	# bench/scrape.sh and bench/overhead.sh scrape the exporter; overhead.sh's bpftrace peer
	curl bpftrace
)
case "${1:-}" in
	"") ;;
	--build-only) packages=("${build_packages[@]}") ;;
	*) echo "usage: setup.sh [--build-only]" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
	echo "setup.sh installs Debian packages: run it as root" >&2
	exit 2
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "setup: all ${#packages[@]} packages present"

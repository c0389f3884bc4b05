#!/usr/bin/env bash
# What can be checked of deploy/Containerfile without a container engine (the
# image build itself is not exercised: no engine runs on CI or the development
# machine): each package of its runtime stage exists in this machine's
# Debian 12 apt sources, and those packages (with their dependencies) cover
# every shared library the built binary loads (ldd, each mapped to its
# package with dpkg -S), so the image cannot miss one.
# Usage: tests/deploy/check_containerfile.sh [NATBPF] [CONTAINERFILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
natbpf=${1:-build/natbpf}
containerfile=${2:-deploy/Containerfile}
[ -x "$natbpf" ] || { echo "check_containerfile: no natbpf at $natbpf" >&2; exit 2; }

# The runtime stage's `apt-get install` arguments: everything after the last
# FROM, from `install` to the next `&&`, without options.
mapfile -t runtime < <(awk '/^FROM/ { buf = "" } { buf = buf " " $0 } END { print buf }' "$containerfile" |
	tr -d '\\' | sed -n 's/.*apt-get install\(.*\)/\1/p' | sed 's/&&.*//' | tr ' \t' '\n\n' | grep -v '^-' | grep -v '^$')
[ ${#runtime[@]} -gt 0 ] || { echo "check_containerfile: no apt-get install in the last stage of $containerfile" >&2; exit 1; }

fail=0
for p in "${runtime[@]}"; do
	apt-cache show "$p" >/dev/null 2>&1 || { echo "check_containerfile: $containerfile installs '$p', not a Debian package here" >&2; fail=1; }
done

# The packages the runtime list brings in (Depends and Pre-Depends, recursively).
mapfile -t closure < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances "${runtime[@]}" 2>/dev/null | grep -v '^ ' | sed 's/:.*//' | sort -u)

package_of() { # LIBRARY PATH
	local p
	for p in "$1" "$(readlink -f "$1")" "/usr$1"; do
		dpkg -S "$p" 2>/dev/null | head -1 | sed 's/:.*//' && return 0
	done
	return 1
}
libs=0
while read -r lib; do
	libs=$((libs + 1))
	pkg=$(package_of "$lib") || { echo "check_containerfile: $lib (ldd $natbpf) belongs to no Debian package" >&2; fail=1; continue; }
	printf '%s\n' "${closure[@]}" | grep -qx "$pkg" ||
		{ echo "check_containerfile: $lib is in $pkg, which $containerfile's runtime packages do not install" >&2; fail=1; }
done < <(ldd "$natbpf" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
[ $fail -eq 0 ] || exit 1
echo "check_containerfile: ${#runtime[@]} runtime packages exist and cover the $libs libraries of $natbpf"

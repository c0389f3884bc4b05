#!/usr/bin/env bash
# cpack -G DEB on the build directory of $NATBPF, installed with dpkg into a
# fresh root whose dpkg database is the host's (so its Depends are checked
# against what is really installed, no --force): the Depends name the linked
# libraries, the installed natbpf runs (in a chroot of that root, the host's
# libraries bind-mounted read-only in a private mount namespace) and names
# the build's git revision, the man page renders, the completions are in
# place and complete, and dpkg -r removes it all. A second root without
# libbpf1 must refuse the package. Host only: the VM has the binary, not the
# build directory, cpack or dpkg.
source "$(dirname "$0")/lib.sh"

[ "${NATBPF_VM:-}" = 1 ] && skip "builds a .deb from the build directory: host only, the VM carries the binary alone"
build=$(cd "$(dirname "$(command -v "$NATBPF" || echo "$NATBPF")")" && pwd)
[ -f "$build/CPackConfig.cmake" ] || fail "$NATBPF is not in a cmake build directory (no CPackConfig.cmake in $build)"
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")
for tool in cpack dpkg dpkg-shlibdeps man unshare chroot; do
	command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/setup.sh"
done

# The revision the build names: HEAD of its source tree, -dirty with changes.
rev=$(git -C "$src" rev-parse --short=7 HEAD) || fail "the source tree $src is not a git checkout"
[ -z "$(git --no-optional-locks -C "$src" status --porcelain --untracked-files=no)" ] || rev="$rev-dirty"
version=$("$NATBPF" --version) || fail "natbpf --version exited $?"
[[ "$version" =~ ^natbpf\ [0-9]+\.[0-9]+\.[0-9]+\ \(git\ $rev\)$ ]] ||
	fail "natbpf --version says '$version', the source tree is at $rev: rebuild"

(cd "$build" && cpack -G DEB -B "$SCEN_TMP/pkg") >"$SCEN_TMP/cpack.log" 2>&1 || { cat "$SCEN_TMP/cpack.log"; fail "cpack -G DEB failed"; }
deb=$(ls "$SCEN_TMP"/pkg/natbpf_*.deb) || fail "cpack wrote no natbpf_*.deb"

# A root with its own dpkg database: the host's package states, and file
# lists so dpkg's conflict check reads what it would on the host.
new_root() { # DIR [PACKAGE_TO_FORGET]
	mkdir -p "$1/var/lib/dpkg/info" "$1/var/lib/dpkg/updates" "$1/usr/lib" "$1/usr/lib64" "$1/etc"
	touch "$1/var/lib/dpkg/available"
	if [ -n "${2:-}" ]; then
		awk -v RS= -v ORS='\n\n' -v p="$2" '$0 !~ "(^|\n)Package: " p "\n"' /var/lib/dpkg/status >"$1/var/lib/dpkg/status"
	else
		cp /var/lib/dpkg/status "$1/var/lib/dpkg/status"
	fi
	ln -s usr/lib "$1/lib"
	ln -s usr/lib64 "$1/lib64"
}

# Without libbpf1 the Depends must stop the install.
norm=$SCEN_TMP/nolibbpf
new_root "$norm" libbpf1
grep -q '^Package: libbpf1$' "$norm/var/lib/dpkg/status" && fail "could not take libbpf1 out of the copied status"
dpkg --root="$norm" -i "$deb" >"$SCEN_TMP/nolibbpf.log" 2>&1 && fail "dpkg installed natbpf without libbpf1"
assert_contains "$SCEN_TMP/nolibbpf.log" "natbpf depends on libbpf1" "dpkg should refuse: natbpf depends on libbpf1"

root=$SCEN_TMP/root
new_root "$root"
dpkg --root="$root" -i "$deb" >"$SCEN_TMP/install.log" 2>&1 || { cat "$SCEN_TMP/install.log"; fail "dpkg -i failed"; }
dpkg --root="$root" -s natbpf >"$SCEN_TMP/status" || fail "dpkg -s natbpf: not installed"
assert_contains "$SCEN_TMP/status" "^Status: install ok installed$"
for lib in libbpf1 libnftables1 libnftnl11 libmnl0 libpcap0.8 libcivetweb1 libc6 libstdc\\+\\+6; do
	assert_contains "$SCEN_TMP/status" "^Depends: (.*, )?$lib( |,|$)" "Depends should name $lib"
done
for f in usr/bin/natbpf usr/share/man/man1/natbpf.1 usr/share/bash-completion/completions/natbpf \
	usr/share/zsh/site-functions/_natbpf; do
	[ -f "$root/$f" ] || fail "the package did not install /$f"
done

# The installed binary, run in the root: the host's libraries are bind-mounted
# read-only in a mount namespace of its own, gone when the command ends.
unshare --mount --propagation private sh -c '
	for d in usr/lib usr/lib64; do
		mount --bind "/$d" "$1/$d" && mount -o remount,bind,ro "$1/$d" || exit 1
	done
	chroot "$1" /usr/bin/natbpf --version' sh "$root" >"$SCEN_TMP/version" 2>&1 ||
	{ cat "$SCEN_TMP/version"; fail "the installed natbpf did not run"; }
[ "$(cat "$SCEN_TMP/version")" = "$version" ] ||
	fail "the installed natbpf says '$(cat "$SCEN_TMP/version")', the build says '$version'"
findmnt -rn -o TARGET | grep -q "^$root" && fail "a bind mount of the chroot outlived its namespace"

MANWIDTH=80 man -l --warnings "$root/usr/share/man/man1/natbpf.1" >"$SCEN_TMP/man.txt" 2>"$SCEN_TMP/man.err" ||
	fail "man -l natbpf.1 failed"
[ -s "$SCEN_TMP/man.err" ] && { cat "$SCEN_TMP/man.err"; fail "man -l --warnings complained about natbpf.1"; }
for s in NAME SYNOPSIS DESCRIPTION COMMANDS "EXIT STATUS" ENVIRONMENT FILES "SEE ALSO" "natbpf trace" "--proto tcp\|udp\|icmp"; do
	assert_contains "$SCEN_TMP/man.txt" "$s"
done
bash -n "$root/usr/share/bash-completion/completions/natbpf" || fail "the bash completion does not parse"

# The installed bash completion, as bash runs it on a TAB.
complete_words() { # WORD...: what _natbpf offers for the last word
	bash --norc --noprofile -c 'source "$0" || exit 9; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _natbpf
		printf "%s\n" "${COMPREPLY[@]}"' "$root/usr/share/bash-completion/completions/natbpf" "$@" | sort | tr '\n' ' '
}
[ "$(complete_words natbpf trace --pr)" = "--proto " ] || fail "natbpf trace --pr<TAB> offers '$(complete_words natbpf trace --pr)'"
[ "$(complete_words natbpf trace --proto '')" = "icmp tcp udp " ] ||
	fail "natbpf trace --proto <TAB> offers '$(complete_words natbpf trace --proto '')'"
ns=$(scen_netns pkg) || fail "cannot create a network namespace"
complete_words natbpf drops --netns nb$$- | grep -qw "$ns" || fail "natbpf drops --netns <TAB> does not offer $ns"

dpkg --root="$root" -r natbpf >"$SCEN_TMP/remove.log" 2>&1 || { cat "$SCEN_TMP/remove.log"; fail "dpkg -r natbpf failed"; }
left=$(cd "$root" && find usr -path "*natbpf*" | head -3)
[ -z "$left" ] || fail "dpkg -r left $left"
echo "PASS package ($(basename "$deb"), $version)"

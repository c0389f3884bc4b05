#!/usr/bin/env bash
# Runs a command (or an interactive shell) inside a throw-away qemu VM booting one of
# Debian's kernels, with natbpf, the repo's tests/ and scripts/, nft, iptables
# (nft and legacy), conntrack, iproute2, bpftool and bash, and the netfilter modules
# of scripts/vm/modules.txt loaded.
#
#   scripts/vm-test.sh --kernel 6.1|6.12 [--binary PATH] [--timeout SECONDS]
#                      [--append "kernel args"] [--env VAR=VALUE]... [--memory MB]
#                      [--quiet] [--log FILE] -- COMMAND...
#   scripts/vm-test.sh --kernel 6.1 --shell
#
# COMMAND runs with bash in /natbpf (the repo's tests/ and scripts/ are there, the
# binary is /natbpf/build/natbpf and /usr/local/bin/natbpf). A single argument is a
# bash script text ('uname -r; nft list ruleset'); several arguments are one command
# line, quoted as given (tests/scenarios/x.sh "a b"). Inside the VM NATBPF_VM=1,
# NATBPF_VM_KERNEL=6.1|6.12 and NATBPF_BIN=/natbpf/build/natbpf are set, plus --env.
#
# --kernel also takes an exact package name (linux-image-6.1.0-56-amd64).
# Otherwise it is the newest linux-image-6.1.0-N-amd64 or linux-image-6.12.N+deb12-amd64
# that apt-cache offers (run as root it does 'apt-get update' once if none is found).
#
# Exit status: COMMAND's own, read from the VM console; 124 when --timeout ran out;
# 125 when the VM failed otherwise (no exit marker: boot failure, panic, crash);
# 2 for a usage or setup error. Failures print the last 40 console lines.
# --quiet hides the console unless the run fails; --log keeps a copy of it.
#
# Everything downloaded or built is cached in build/vm-cache/ (NATBPF_VM_CACHE):
# debs/ (kernel packages), kernels/ (vmlinuz + the needed modules, decompressed,
# with depmod run) and initramfs/ (the base image, rebuilt when this script, the
# scripts/vm/ files, the kernel or a host tool changes). A new kernel package of the
# same series replaces the older one. Extra host binaries to copy into the VM, with
# their libraries: NATBPF_VM_EXTRA_BINS="path-or-name ...".
#
# Uses software emulation (-accel tcg) only: KVM is never used.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VMDIR=$ROOT/scripts/vm
CACHE=${NATBPF_VM_CACHE:-$ROOT/build/vm-cache}
# cache keys: the staged kernel depends on the staging code and the module list only,
# the base initramfs on everything here
STAGE_HASH=$( (sed -n '/^# -* staged kernel/,/^# -* initramfs helpers/p' "${BASH_SOURCE[0]}"
	cat "$VMDIR/modules.txt" "$VMDIR/modclosure.awk") | sha256sum | cut -c1-16)
SELF_HASH=$(cat "${BASH_SOURCE[0]}" "$VMDIR/init" "$VMDIR/modules.txt" "$VMDIR/modclosure.awk" | sha256sum | cut -c1-16)

say() { echo "vm-test: $*" >&2; }
die() { echo "vm-test: error: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit "${1:-2}"; }

kernel="" binary="" binary_given=0 timeout_s=300 append="" shell=0 memory=1024 quiet=0 logcopy=""
envs=()
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) kernel=${2:?--kernel needs a value}; shift 2 ;;
	--binary) binary=${2:?--binary needs a path}; binary_given=1; shift 2 ;;
	--timeout) timeout_s=${2:?--timeout needs seconds}; shift 2 ;;
	--append) append=${2?--append needs a value}; shift 2 ;;
	--env) envs+=("${2:?--env needs VAR=VALUE}"); shift 2 ;;
	--memory) memory=${2:?--memory needs MB}; shift 2 ;;
	--shell) shell=1; shift ;;
	--quiet | -q) quiet=1; shift ;;
	--log) logcopy=${2:?--log needs a file}; shift 2 ;;
	-h | --help) usage 0 ;;
	--) shift; break ;;
	*) echo "vm-test: unknown argument '$1'" >&2; usage ;;
	esac
done
cmd=("$@")
[ -n "$kernel" ] || { echo "vm-test: --kernel is required" >&2; usage; }
[[ $timeout_s =~ ^[0-9]+$ && $timeout_s -gt 0 ]] || die "--timeout must be a positive number of seconds"
[[ $memory =~ ^[0-9]+$ ]] || die "--memory must be a number of MiB"
if [ $shell = 1 ]; then
	[ ${#cmd[@]} -eq 0 ] || die "--shell takes no COMMAND"
else
	[ ${#cmd[@]} -gt 0 ] || die "no COMMAND given (put it after --), or use --shell"
fi
for e in "${envs[@]}"; do
	[[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env wants VAR=VALUE, got '$e'"
done
if [ -z "$binary" ]; then binary=$ROOT/build/natbpf; fi
if [ ! -f "$binary" ]; then
	[ $binary_given = 0 ] || die "--binary $binary does not exist"
	say "note: no natbpf binary at $binary; the VM runs without it"
	binary=""
fi
for t in qemu-system-x86_64 busybox cpio gzip depmod dpkg-deb apt-cache apt-get xz zstd flock sha256sum timeout ldd; do
	command -v "$t" >/dev/null || die "'$t' is missing: run scripts/setup.sh"
done

mkdir -p "$CACHE/debs" "$CACHE/kernels" "$CACHE/initramfs"
exec 9>"$CACHE/.lock"
flock 9 # one preparation at a time; released before qemu starts

# ---------------------------------------------------------------- kernel package
case $kernel in
6.1) series=6.1 pkg_re='linux-image-6\.1\.0-[0-9]+-amd64' ;;
6.12) series=6.12 pkg_re='linux-image-6\.12\.[0-9]+\+deb12-amd64' ;;
linux-image-6.1.0-*) series=6.1 pkg_re=${kernel//./\\.} ;;
linux-image-6.12.*) series=6.12 pkg_re=${kernel//./\\.} pkg_re=${pkg_re//+/\\+} ;;
*) die "--kernel must be 6.1, 6.12 or a linux-image-6.1.0-*/6.12.* package name" ;;
esac

find_pkg() {
	apt-cache search --names-only '^linux-image-6\.' 2>/dev/null | awk '{print $1}' | grep -E "^$pkg_re\$" | sort -V | tail -n1
}
cached_debs() { # the cached packages of this series, oldest first
	local f
	for f in "$CACHE"/debs/*.deb; do
		if [ -e "$f" ] && [[ $(basename "$f") =~ ^${pkg_re}_ ]]; then echo "$f"; fi
	done | sort -V
}
get_deb() { # sets pkg and deb to the newest package apt offers, downloaded; fails if it cannot
	local ver="" lists memo=$CACHE/debs/.resolved-$kernel msig=""
	# apt-cache takes ~1.3 s: remember its answer until the package lists change
	lists=$(find /var/lib/apt/lists -maxdepth 1 -printf '%f %s %T@\n' 2>/dev/null | sort | sha256sum | cut -c1-16)
	[ ! -f "$memo" ] || read -r msig pkg ver <"$memo" || true
	if [ "$msig" != "$lists" ] || [ -z "$pkg" ] || [ -z "$ver" ]; then
		pkg=$(find_pkg || true)
		[ -n "$pkg" ] || return 1
		ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
		[ -n "$ver" ] || return 1
		echo "$lists $pkg $ver" >"$memo"
	fi
	deb=$CACHE/debs/${pkg}_${ver//:/%3a}_amd64.deb
	[ ! -s "$deb" ] || return 0
	say "downloading $pkg $ver"
	(cd "$CACHE/debs" && apt-get download -q "$pkg=$ver" >/dev/null 2>"$CACHE/debs/.download.err") && [ -s "$deb" ] && return 0
	sed 's/^/  /' "$CACHE/debs/.download.err" >&2
	rm -f "$deb"
	return 1
}
pkg="" deb=""
if ! get_deb; then
	# package lists missing or stale (the mirror dropped the version they name)
	if [ "$(id -u)" = 0 ]; then
		say "no $kernel kernel package to download: running apt-get update"
		apt-get update -q >/dev/null 2>&1 || say "apt-get update failed"
		get_deb || deb=""
	else
		deb=""
	fi
fi
if [ -z "$deb" ]; then
	# offline: fall back to the newest cached package of the series
	deb=$(cached_debs | tail -n1)
	[ -n "$deb" ] || die "no $kernel kernel package available from apt nor cached in $CACHE/debs (run apt-get update)"
	pkg=$(basename "$deb"); pkg=${pkg%%_*}
	say "cannot get the newest $kernel kernel package; using the cached $(basename "$deb")"
fi
kver=${pkg#linux-image-}
# one package per series in the cache: drop older ones
if [[ $kernel == 6.1 || $kernel == 6.12 ]]; then
	while read -r old; do
		if [ -z "$old" ] || [ "$old" = "$deb" ]; then continue; fi
		b=$(basename "$old")
		say "removing older cached $b"
		rm -rf "$old" "$CACHE/kernels/${b%%_*}"-* "$CACHE/initramfs/${b%%_*}"-*
	done < <(cached_debs)
fi

# ---------------------------------------------------------------- staged kernel
# vmlinuz, config and the selected modules (decompressed) with their depmod output
kkey=$(echo "$(basename "$deb") $STAGE_HASH" | sha256sum | cut -c1-12)
kdir=$CACHE/kernels/$pkg-$kkey
if [ ! -s "$kdir/vmlinuz" ]; then
	t0=$SECONDS
	say "staging $kver kernel and modules"
	rm -rf "$CACHE/kernels/$pkg"-*
	tmp=$(mktemp -d "$CACHE/kernels/.tmp.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/*' './lib/modules/*' ||
		die "cannot extract $deb"
	mods=$tmp/lib/modules/$kver
	[ -d "$mods" ] || mods=$(find "$tmp/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n1)
	kver=$(basename "$mods")
	vmlinuz=$(find "$tmp/boot" -name 'vmlinuz-*' | head -n1)
	[ -n "$vmlinuz" ] || die "$deb holds no /boot/vmlinuz (a signed meta package? try the -unsigned one)"
	depmod -b "$tmp" "$kver"
	awk -f "$VMDIR/modclosure.awk" "$VMDIR/modules.txt" "$mods/modules.dep" "$mods/modules.softdep" >"$tmp/closure"
	st=$tmp/stage/lib/modules/$kver
	mkdir -p "$st"
	while read -r kind arg; do
		case $kind in
		nomatch) say "  $kver has no module '$arg' (skipped)" ;;
		load) echo "$arg" >>"$st/natbpf-modules.list" ;;
		file)
			out=$st/${arg%.*}; [[ $arg == *.ko ]] && out=$st/$arg
			mkdir -p "$(dirname "$out")"
			case $arg in
			*.ko.xz) xz -dc "$mods/$arg" >"$out" ;;
			*.ko.zst) zstd -qdc "$mods/$arg" >"$out" ;;
			*.ko.gz) gzip -dc "$mods/$arg" >"$out" ;;
			*) cp "$mods/$arg" "$out" ;;
			esac ;;
		esac
	done <"$tmp/closure"
	cp "$mods"/modules.builtin* "$mods/modules.order" "$st/"
	depmod -b "$tmp/stage" "$kver"
	mkdir -p "$tmp/stage/boot"
	cp "$tmp/boot/config-$kver" "$tmp/stage/boot/" 2>/dev/null || true
	mkdir -p "$tmp/out"
	cp "$vmlinuz" "$tmp/out/vmlinuz"
	# The uncompressed ELF vmlinux boots through PVH and spares the ~3 s that
	# decompressing bzImage takes under TCG (like the kernel's extract-vmlinux).
	for fmt in '\xFD7zXZ\x00:xz -dc' '\x28\xB5\x2F\xFD:zstd -qdc' '\x1F\x8B\x08:gzip -dc'; do
		off=$(LC_ALL=C grep -obUaP "${fmt%%:*}" "$vmlinuz" | head -n1 | cut -d: -f1 || true)
		[ -n "$off" ] || continue
		tail -c +$((off + 1)) "$vmlinuz" | ${fmt#*:} >"$tmp/out/vmlinux" 2>/dev/null || true
		# ELF, with the Xen PHYS32_ENTRY note (type 18) that PVH boot needs
		if [ "$(head -c4 "$tmp/out/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] &&
			{ ! command -v readelf >/dev/null ||
				readelf -n "$tmp/out/vmlinux" 2>/dev/null | grep -q -i -E '\(0x00000012\)|PHYS32'; }; then
			break
		fi
		rm -f "$tmp/out/vmlinux"
	done
	[ -s "$tmp/out/vmlinux" ] || say "note: no PVH-bootable vmlinux in $(basename "$vmlinuz"); booting the bzImage"
	mv "$tmp/stage" "$tmp/out/root"
	echo "$kver" >"$tmp/out/kver"
	mv "$tmp/out" "$kdir"
	rm -rf "$tmp"; trap - EXIT
	say "staged $(wc -l <"$kdir/root/lib/modules/$kver/natbpf-modules.list") modules ($(find "$kdir/root" -name '*.ko' | wc -l) files with dependencies) in $((SECONDS - t0)) s"
fi
kver=$(cat "$kdir/kver")
kernel_image=$kdir/vmlinuz
[ ! -s "$kdir/vmlinux" ] || kernel_image=$kdir/vmlinux

# ---------------------------------------------------------------- initramfs helpers
# copy_bin ROOTDIR FILE...: copies each file (to the same path) and its libraries
copy_libs() { # root file
	local root=$1 f=$2 lib
	# shellcheck disable=SC2016
	ldd "$f" 2>/dev/null | awk '/=> \// {print $3} /^\t\// {print $1}' | while read -r lib; do
		[ -e "$root$lib" ] || { mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; }
	done
}
copy_bin() { # root path [dest]
	local root=$1 src=$2 dst=${3:-$2}
	mkdir -p "$root$(dirname "$dst")"
	cp -L "$src" "$root$dst"
	copy_libs "$root" "$src"
}

# host tools: real binaries win over busybox applets of the same name
tools=(bash kmod nft xtables-nft-multi xtables-legacy-multi conntrack ip tc ss bridge bpftool
	timeout stdbuf env date stat mktemp seq sort uniq head tail cut tr tee wc cat ls cp mv rm ln
	mkdir chmod readlink realpath dirname basename printf sleep touch id nproc
	grep sed mawk find xargs ps pgrep pkill sysctl nsenter unshare flock setsid
	jq nc.openbsd socat setpriv cmp diff tcpdump ulogd)
# shellcheck disable=SC2206
tools+=(${NATBPF_VM_EXTRA_BINS:-})
tool_paths=() tools_missing=()
for t in "${tools[@]}"; do
	p=$(type -P "$t" || true)
	# keep the name (pkill may be a link to pgrep): copy_bin dereferences
	if [ -n "$p" ] && [ -x "$p" ]; then tool_paths+=("$p"); else tools_missing+=("$t"); fi
done
sig=$( (echo "$SELF_HASH $kkey"; stat -L -c '%n %s %Y' "${tool_paths[@]}" "$(command -v busybox)" /usr/lib/x86_64-linux-gnu/xtables/*.so /usr/lib/x86_64-linux-gnu/ulogd/*.so 2>/dev/null || true) | sha256sum | cut -c1-12)
base=$CACHE/initramfs/$pkg-$sig.cpio.gz

mkcpio() { # dir out gzip-level
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip "-$3" >"$2"
}

if [ ! -s "$base" ]; then
	t0=$SECONDS
	say "building base initramfs for $kver"
	[ ${#tools_missing[@]} -eq 0 ] || say "note: not on this host, so not in the VM: ${tools_missing[*]}"
	rm -f "$CACHE/initramfs/$pkg"-*
	r=$(mktemp -d "$CACHE/initramfs/.tmp.XXXXXX")
	trap 'rm -rf "$r"' EXIT
	mkdir -p "$r"/usr/{bin,sbin,lib,lib64,local/bin} "$r"/{proc,sys,dev,tmp,run,etc,root,mnt,var,boot,natbpf}
	for d in bin sbin lib lib64; do ln -s "usr/$d" "$r/$d"; done
	ln -s ../run "$r/var/run"
	mknod -m 600 "$r/dev/console" c 5 1 2>/dev/null || true
	mknod -m 666 "$r/dev/null" c 1 3 2>/dev/null || true
	cp -a "$kdir/root/lib/." "$r/usr/lib/"
	cp -a "$kdir/root/boot/." "$r/boot/"
	install -m 755 "$VMDIR/init" "$r/init"

	for p in "${tool_paths[@]}"; do copy_bin "$r" "$p"; done
	# names under which the multi-call binaries and renamed tools are found
	[ ! -e "$r/usr/bin/mawk" ] || ln -sf mawk "$r/usr/bin/awk"
	[ ! -e "$r/usr/bin/nc.openbsd" ] || ln -sf nc.openbsd "$r/usr/bin/nc"
	for n in modprobe insmod rmmod lsmod modinfo depmod; do ln -sf ../bin/kmod "$r/usr/sbin/$n"; done
	host_iptables=$(basename "$(readlink -f /usr/sbin/iptables 2>/dev/null || echo xtables-nft-multi)")
	[ "$host_iptables" = xtables-legacy-multi ] || host_iptables=xtables-nft-multi
	for fam in iptables ip6tables; do
		for suf in "" -save -restore; do
			ln -sf xtables-nft-multi "$r/usr/sbin/$fam-nft$suf"
			ln -sf xtables-legacy-multi "$r/usr/sbin/$fam-legacy$suf"
			ln -sf "$host_iptables" "$r/usr/sbin/$fam$suf"
		done
	done
	for n in xtables-monitor iptables-translate ip6tables-translate iptables-restore-translate ip6tables-restore-translate arptables-nft ebtables-nft; do
		ln -sf xtables-nft-multi "$r/usr/sbin/$n"
	done
	if [ -d /usr/lib/x86_64-linux-gnu/xtables ]; then
		mkdir -p "$r/usr/lib/x86_64-linux-gnu/xtables"
		for so in /usr/lib/x86_64-linux-gnu/xtables/*.so; do copy_bin "$r" "$so"; done
	fi
	# ulogd's plugins are loaded by path from its config (explain_log scenario)
	if [ -d /usr/lib/x86_64-linux-gnu/ulogd ]; then
		for so in /usr/lib/x86_64-linux-gnu/ulogd/*.so; do copy_bin "$r" "$so"; done
	fi
	[ -f /usr/libexec/coreutils/libstdbuf.so ] && copy_bin "$r" /usr/libexec/coreutils/libstdbuf.so
	if [ -e /usr/lib/x86_64-linux-gnu/libgcc_s.so.1 ]; then copy_bin "$r" /usr/lib/x86_64-linux-gnu/libgcc_s.so.1; fi

	# busybox for everything else (ash, mount, ping, awk fallbacks, cttyhack, ...)
	cp "$(command -v busybox)" "$r/usr/bin/busybox"
	busybox --list-full | while read -r a; do
		n=${a##*/}
		[ -e "$r/usr/bin/$n" ] || [ -e "$r/usr/sbin/$n" ] || [ -L "$r/$a" ] || ln -s /usr/bin/busybox "$r/$a"
	done

	# configuration files the tools read
	for f in /etc/protocols /etc/services /etc/ethertypes /etc/nsswitch.conf /etc/inputrc; do
		[ -f "$f" ] && cp "$f" "$r/etc/"
	done
	for d in /etc/iproute2 /usr/share/iproute2; do
		[ -d "$d" ] && mkdir -p "$r$d" && cp -a "$d/." "$r$d/"
	done
	for t in l/linux v/vt100 v/vt102 v/vt220 x/xterm x/xterm-256color d/dumb s/screen; do
		[ -f "/lib/terminfo/$t" ] && mkdir -p "$r/lib/terminfo/${t%/*}" && cp "/lib/terminfo/$t" "$r/lib/terminfo/$t"
		[ -f "/usr/share/terminfo/$t" ] && mkdir -p "$r/usr/share/terminfo/${t%/*}" && cp "/usr/share/terminfo/$t" "$r/usr/share/terminfo/$t"
	done
	printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$r/etc/passwd"
	printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$r/etc/group"
	printf '127.0.0.1\tlocalhost natbpf-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
	echo natbpf-vm >"$r/etc/hostname"
	: >"$r/etc/fstab"
	ln -sf /proc/self/mounts "$r/etc/mtab"

	mkcpio "$r" "$base.tmp" 6
	mv "$base.tmp" "$base"
	rm -rf "$r"; trap - EXIT
	say "base initramfs $(du -h "$base" | cut -f1) built in $((SECONDS - t0)) s"
fi

# ---------------------------------------------------------------- per-run archive
work=$(mktemp -d "${TMPDIR:-/tmp}/natbpf-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
r=$work/root
mkdir -p "$r/natbpf/build" "$r/natbpf-vm" "$r"/usr/{bin,sbin,lib,lib64,local/bin}
# same merged-/usr links as the base: the kernel would replace a link by a directory
for d in bin sbin lib lib64; do ln -s "usr/$d" "$r/$d"; done
for d in tests scripts; do
	[ -d "$ROOT/$d" ] && cp -a "$ROOT/$d" "$r/natbpf/"
done
if [ -n "$binary" ]; then
	copy_bin "$r" "$(readlink -f "$binary")" /natbpf/build/natbpf
	ln -s /natbpf/build/natbpf "$r/usr/local/bin/natbpf"
fi
nonce=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
echo "$nonce" >"$r/natbpf-vm/nonce"
if [ $shell = 1 ]; then echo shell; else echo run; fi >"$r/natbpf-vm/mode"
{
	echo "export NATBPF_VM=1 NATBPF_VM_KERNEL=$series NATBPF_BIN=/natbpf/build/natbpf"
	echo "export PS1='natbpf-vm($series):\\w# '"
	# the serial console does not know the size of the terminal
	if [ $shell = 1 ] && size=$(stty size </dev/tty 2>/dev/null) && [ -n "$size" ]; then
		echo "stty rows ${size% *} cols ${size#* } 2>/dev/null"
	fi
	for e in "${envs[@]}"; do printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"; done
} >"$r/natbpf-vm/env"
{
	echo "# generated by scripts/vm-test.sh"
	if [ ${#cmd[@]} -eq 1 ]; then
		printf '%s\n' "${cmd[0]}"
	else
		printf '%q ' "${cmd[@]}"; echo
	fi
} >"$r/natbpf-vm/cmd.sh"
mkcpio "$r" "$work/run.cpio.gz" 1
cat "$base" "$work/run.cpio.gz" >"$work/initrd"
flock -u 9
exec 9>&-

qemu=(qemu-system-x86_64 -accel tcg,thread=single -cpu max -m "$memory" -smp 2 -nographic -nodefaults
	-no-reboot -no-user-config -nic none -serial mon:stdio
	-kernel "$kernel_image" -initrd "$work/initrd"
	-append "console=ttyS0 panic=-1 quiet $append")
# qboot starts the kernel about a second sooner than SeaBIOS and prints nothing
[ ! -f /usr/share/qemu/qboot.rom ] || qemu+=(-bios /usr/share/qemu/qboot.rom)

if [ $shell = 1 ]; then
	say "booting $kver (Ctrl-a x quits qemu; 'exit' powers off)"
	"${qemu[@]}"
	exit $?
fi

# ---------------------------------------------------------------- run and judge
log=$work/console.log
t_start=$EPOCHREALTIME
say "booting $kver ($pkg), timeout ${timeout_s} s"
set +e
timeout -k 5 "$timeout_s" "${qemu[@]}" </dev/null 2>&1 | {
	while IFS= read -r line || [ -n "$line" ]; do
		line=${line%$'\r'}
		printf '%s\n' "$line" >>"$log"
		[ $quiet = 1 ] || printf '%s\n' "$line"
		[[ $line == *NATBPF-VM-BEGIN* ]] && echo "$EPOCHREALTIME" >"$work/begin"
	done
}
qrc=${PIPESTATUS[0]}
set -e
t_end=$EPOCHREALTIME
[ -z "$logcopy" ] || cp "$log" "$logcopy"

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b - a}'; }
total=$(elapsed "$t_start" "$t_end")
boot="?"
[ -f "$work/begin" ] && boot=$(elapsed "$t_start" "$(cat "$work/begin")")
guest_boot=$(sed -n 's/^NATBPF-VM-BEGIN [^ ]* \([0-9.]*\).*/\1/p' "$log" | tail -n1)

fail() { # rc message
	echo "vm-test: FAILED: $2" >&2
	echo "vm-test: ---- last 40 console lines ($kver) ----" >&2
	tail -n 40 "$log" >&2
	echo "vm-test: ---- end of console ----" >&2
	exit "$1"
}
rc=$(grep -a -o "NATBPF-VM-EXIT=[0-9]* $nonce" "$log" | tail -n1 | sed 's/^NATBPF-VM-EXIT=\([0-9]*\) .*/\1/' || true)
if [ -z "$rc" ]; then
	if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
		fail 124 "timed out after ${timeout_s} s (kernel $kver, boot to command ${boot} s)"
	fi
	grep -q -a 'Kernel panic' "$log" && fail 125 "kernel panic (kernel $kver)"
	fail 125 "the VM ended (qemu status $qrc) without reporting the command's exit status (kernel $kver)"
fi
say "kernel $kver: exit status $rc; boot to command ${boot} s (guest uptime ${guest_boot:-?} s), total ${total} s"
exit "$rc"

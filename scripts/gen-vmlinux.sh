#!/usr/bin/env bash
# Generate a minimal vmlinux.h for natbpf's BPF CO-RE programs.
#
# Usage: scripts/gen-vmlinux.sh [BTF_FILE] [OUT]
#   BTF_FILE  defaults to /sys/kernel/btf/vmlinux
#   OUT       defaults to vmlinux/x86/vmlinux.h (relative to the repo root)
#
# Environment:
#   BPFTOOL        bpftool binary (default: bpftool)
#   PYTHON         python3 binary (default: python3)
#   KERNEL_RELEASE kernel release recorded in the header (default: uname -r
#                  when BTF_FILE is the running kernel's BTF, else "unknown")
#   BTF_DESC       description of the BTF source for the header comment
#                  (default: the BTF_FILE path)
#   ALLOW_MISSING  set to 1 to only warn when a root type is absent from BTF
#   EXTRA_BTF      space-separated kernel modules (.ko, .ko.xz/.zst/.gz) whose
#                  split BTF (against BTF_FILE) is merged in; needed when
#                  netfilter/conntrack/nf_tables are modules (e.g. Debian
#                  kernels), since their types are then not in vmlinux BTF
#
# BTF_FILE may be raw BTF (/sys/kernel/btf/vmlinux), an ELF vmlinux, or a
# non-ELF kernel image such as Debian's arm64 vmlinuz (gzip'd Image), from
# which the BTF blob is extracted.
#
# Example (Debian arm64 kernel, unpacked with dpkg-deb -x into $D):
#   KERNEL_RELEASE=6.1.0-50-arm64 ALLOW_MISSING=1 \
#   EXTRA_BTF="$D/lib/modules/6.1.0-50-arm64/kernel/net/netfilter/{nf_conntrack,nf_nat,nf_tables,x_tables}.ko" \
#     scripts/gen-vmlinux.sh $D/boot/vmlinuz-6.1.0-50-arm64 vmlinux/arm64/vmlinux.h
#   (expand the braces yourself; EXTRA_BTF is split on spaces)
#
# The full `bpftool btf dump ... format c` output is reduced by
# scripts/vmlinux_filter.py to the declarations reachable (by value) from the
# ROOTS below; pointer-only references become forward declarations.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

BTF=${1:-/sys/kernel/btf/vmlinux}
OUT=${2:-$REPO_ROOT/vmlinux/x86/vmlinux.h}
BPFTOOL=${BPFTOOL:-bpftool}
PYTHON=${PYTHON:-python3}

# Root types. A leading '?' marks an optional root.
# "enum-with X" keeps the (possibly anonymous) enum that contains enumerator X.
ROOTS=(
	"struct sk_buff"
	"struct nf_hook_state"
	"struct nf_hook_entries"
	"struct nf_hook_entry"
	"struct nf_hook_ops"
	"struct nf_conn"
	"struct nf_conntrack_tuple_hash"
	"struct nf_conntrack_tuple"
	"struct nf_conntrack_man"
	"union nf_conntrack_man_proto"
	"union nf_inet_addr"
	"struct nf_nat_range2"
	"struct nft_traceinfo"
	"struct nft_pktinfo"
	"struct nft_rule_dp"
	"struct nft_rule_dp_last"
	"struct nft_chain"
	"struct nft_base_chain"
	"struct nft_table"
	"struct nft_verdict"
	"struct xt_table"
	"struct net"
	"struct net_device"
	"struct ip_conntrack_stat"
	"struct iphdr"
	"struct ipv6hdr"
	"struct tcphdr"
	"struct udphdr"
	"struct icmphdr"
	"struct icmp6hdr"
	"struct pt_regs"
	"struct trace_event_raw_kfree_skb"
	"struct ns_common"
	"struct sock_common"
	"struct sock"
	"enum skb_drop_reason"
	"enum ip_conntrack_status"
	"enum ip_conntrack_info"
	"enum ip_conntrack_dir"
	"enum nf_nat_manip_type"
	"enum nft_trace_types"
	"enum nf_inet_hooks"
	"enum bpf_map_type"
	"enum-with BPF_ANY"
	"?typedef btf_trace_kfree_skb"
	# basic scalar typedefs commonly used by BPF programs
	"?enum-with true"
	"typedef bool"
	"typedef u8" "typedef u16" "typedef u32" "typedef u64"
	"typedef s8" "typedef s16" "typedef s32" "typedef s64"
	"typedef __u8" "typedef __u16" "typedef __u32" "typedef __u64"
	"typedef __s8" "typedef __s16" "typedef __s32" "typedef __s64"
	"typedef __be16" "typedef __be32" "typedef __be64"
	"?typedef __le16" "?typedef __le32" "?typedef __le64"
	"typedef __wsum" "?typedef __sum16"
	"?typedef size_t" "?typedef ssize_t" "?typedef pid_t"
)

command -v "$BPFTOOL" >/dev/null || { echo "gen-vmlinux: $BPFTOOL not found" >&2; exit 1; }
command -v "$PYTHON" >/dev/null || { echo "gen-vmlinux: $PYTHON not found" >&2; exit 1; }
[ -r "$BTF" ] || { echo "gen-vmlinux: cannot read BTF file $BTF" >&2; exit 1; }

if [ -z "${KERNEL_RELEASE:-}" ]; then
	if [ "$(readlink -f "$BTF")" = /sys/kernel/btf/vmlinux ]; then
		KERNEL_RELEASE=$(uname -r)
	else
		KERNEL_RELEASE=unknown
	fi
fi
BPFTOOL_VERSION=$("$BPFTOOL" version 2>/dev/null | tr '\n' ' ' | sed 's/ *$//')

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Accept raw BTF or ELF directly; otherwise extract BTF from a kernel image.
BASE=$BTF
MAGIC=$(head -c 4 "$BTF" | od -An -tx1 | tr -d ' \n')
case "$MAGIC" in
9feb*|eb9f*|7f454c46) ;;
*)
	"$PYTHON" "$SCRIPT_DIR/vmlinux_filter.py" extract-btf "$BTF" "$TMP/vmlinux.btf"
	BASE=$TMP/vmlinux.btf
	;;
esac

"$BPFTOOL" btf dump file "$BASE" format c > "$TMP/full.h"

EXTRA_ARGS=()
EXTRA_DESC=()
n=0
for mod in ${EXTRA_BTF:-}; do
	n=$((n + 1))
	name=$(basename "$mod")
	name=${name%%.ko*}
	mkdir -p "$TMP/$n"
	case "$mod" in
	*.ko.xz) xz -dc "$mod" > "$TMP/$n/$name.ko" ;;
	*.ko.zst) zstd -qdc "$mod" > "$TMP/$n/$name.ko" ;;
	*.ko.gz) gzip -dc "$mod" > "$TMP/$n/$name.ko" ;;
	*) cp "$mod" "$TMP/$n/$name.ko" ;;
	esac
	"$BPFTOOL" btf dump file "$TMP/$n/$name.ko" -B "$BASE" format c > "$TMP/$n/$name.ko.h"
	EXTRA_ARGS+=(--extra "$TMP/$n/$name.ko.h")
	EXTRA_DESC+=("$name")
done

{
	echo "/* SPDX-License-Identifier: GPL-2.0 */"
	echo "/*"
	echo " * Minimal vmlinux.h for natbpf BPF CO-RE programs. DO NOT EDIT."
	echo " *"
	echo " * Generated by: scripts/gen-vmlinux.sh (filter: scripts/vmlinux_filter.py)"
	echo " * BTF source:   ${BTF_DESC:-$BTF}"
	if [ ${#EXTRA_DESC[@]} -gt 0 ]; then
		echo " * Module BTF:   ${EXTRA_DESC[*]}"
	fi
	echo " * Kernel:       $KERNEL_RELEASE"
	echo " * Host arch:    $(uname -m) (BTF may come from another arch)"
	echo " * bpftool:      $BPFTOOL_VERSION"
	echo " * Date:         $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo " *"
	echo " * Root types (complete definitions; everything reachable by value from"
	echo " * them is included, pointer-only references are forward-declared;"
	echo " * '?' = optional):"
	# one "kind name" per entry, wrapped without splitting an entry
	printf '%s\n' "${ROOTS[@]}" | tr ' ' '@' | paste -sd ',' | sed 's/,/, /g' |
		fold -s -w 72 | sed 's/ *$//; s/@/ /g; s/^/ *   /'
	echo " */"
} > "$TMP/comment.txt"

ARGS=()
for r in "${ROOTS[@]}"; do
	ARGS+=(--root "$r")
done
if [ "${ALLOW_MISSING:-0}" = 1 ]; then
	ARGS+=(--allow-missing)
fi

mkdir -p "$(dirname "$OUT")"
"$PYTHON" "$SCRIPT_DIR/vmlinux_filter.py" "$TMP/full.h" "$TMP/out.h" \
	--header-comment "$TMP/comment.txt" "${ARGS[@]}" ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"}
mv "$TMP/out.h" "$OUT"
echo "gen-vmlinux: wrote $OUT ($(wc -l < "$OUT") lines, $(wc -c < "$OUT") bytes)" >&2

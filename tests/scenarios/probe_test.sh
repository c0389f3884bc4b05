#!/usr/bin/env bash
# `natbpf probe --json` tells the truth about this kernel, and its attach plan
# takes the path the runner expects (NATBPF_EXPECT_PATH).
source "$(dirname "$0")/lib.sh"

out=$SCEN_TMP/probe.json
$NATBPF probe --json >"$out" || fail "natbpf probe exited $?"
jq_true "$out" '.schema_version == 2 and .type == "probe"'
jq_true "$out" ".kernel_release == \"$(uname -r)\""
jq_true "$out" '.btf.vmlinux == true'
jq_true "$out" '.capabilities.CAP_BPF and .capabilities.CAP_NET_ADMIN'
jq_true "$out" '.tracepoints.kfree_skb.tp_btf.ok == true'
jq_true "$out" '.netlink.nftrace.ok and .netlink.ctnetlink.ok'
jq_true "$out" '.plan.hooks[] | select(.hook == "kfree_skb") | .variant == "tp_btf"'
jq_true "$out" '[.functions[] | select(.name == "nf_nat_l4proto_unique_tuple")][0].fentry.ok == false'

hook() { echo ".plan.hooks[] | select(.hook == \"$1\")"; }
fn() { echo "[.functions[] | select(.name == \"$1\")][0]"; }
case "$NATBPF_EXPECT_PATH" in
tracepoint)
	# fentry refused, kprobes not compiled in, tracepoints working.
	jq_true "$out" "$(fn nf_hook_slow).fexit.reason == \"program load refused (EPERM)\""
	jq_true "$out" "$(fn __nf_conntrack_confirm).kprobe.reason == \"kernel has no kprobe support\""
	jq_true "$out" "$(fn nf_nat_l4proto_unique_tuple).fentry.reason == \"no such symbol, inlined into its caller\""
	jq_true "$out" '.tracepoints.kfree_skb.drop_reason.ok == true'
	jq_true "$out" "$(hook nf_ct_resolve_clash) | .attached == false and .fallback == \"kfree_skb + conntrack stats\""
	jq_true "$out" '.plan.summary | test("^attached 1/9 hooks .*nf_ct_resolve_clash: no fentry/kprobe here, using kfree_skb \\+ conntrack stats")'
	;;
fentry)
	for h in nf_hook_slow __nf_conntrack_confirm nf_ct_resolve_clash nf_nat_setup_info nf_conntrack_tuple_taken nf_conntrack_find_get; do
		jq_true "$out" "$(fn $h).fexit.ok == true" "fexit on $h should load here"
	done
	jq_true "$out" "$(hook nf_hook_slow).variant == \"fexit\""
	jq_true "$out" "$(hook __nft_trace_packet).variant == \"fentry\"" "the trace id hook should take fentry"
	for h in __nf_conntrack_confirm nf_ct_resolve_clash nf_nat_setup_info; do
		jq_true "$out" "$(hook $h).variant == \"fentry/fexit\"" "plan should choose fentry for $h"
	done
	# Variadic: kprobe only, also where fentry works.
	jq_true "$out" "$(hook nf_l4proto_log_invalid).variant == \"kprobe\""
	jq_true "$out" '.plan.summary == "attached 9/9 hooks"'
	;;
kprobe)
	for h in nf_hook_slow __nf_conntrack_confirm nf_ct_resolve_clash nf_nat_setup_info nf_conntrack_tuple_taken nf_conntrack_find_get; do
		jq_true "$out" "$(hook $h).variant == \"kprobe/kretprobe\"" "plan should choose kprobes for $h"
	done
	jq_true "$out" "$(hook nf_l4proto_log_invalid).variant == \"kprobe\""
	jq_true "$out" '.plan.summary == "attached 9/9 hooks"'
	;;
esac

# Text output names the plan too.
$NATBPF probe >"$SCEN_TMP/probe.txt" || fail "natbpf probe (text) exited $?"
assert_contains "$SCEN_TMP/probe.txt" "^attached [0-9]/9 hooks"
echo "PASS probe ($NATBPF_EXPECT_PATH)"

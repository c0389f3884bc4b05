// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/* The floor of any per-drop program here: an empty tp_btf program on
 * kfree_skb. bench/overhead.sh runs it as a peer, so the cost natbpf adds
 * can be told from the cost of being called at all. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp_btf/kfree_skb")
int BPF_PROG(kfree_floor, struct sk_buff *skb, void *location)
{
	return 0;
}

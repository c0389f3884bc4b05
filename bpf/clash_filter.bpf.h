/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * natbpf clash's filter in kfree_skb (hooks.bpf.c): conntrack's per-CPU
 * counters, read in the kernel.
 */
#ifndef NATBPF_CLASH_FILTER_H
#define NATBPF_CLASH_FILTER_H

#include "natbpf.bpf.h"

/*
 * natbpf clash: a netfilter drop is a conntrack insert failure only if
 * conntrack counted it in the packet's namespace on this CPU just before
 * nf_hook_slow freed the packet (__nf_conntrack_confirm: insert_failed, its
 * entry unconfirmed; an entry that could not be created, the table full:
 * drop, and no entry). Any other drop is a rule dropping a new connection,
 * rejected here before a header is read or a record reserved. The counters
 * each CPU saw last (struct nb_ct_seen); a namespace new to a CPU is let
 * through once (user space still wants the counter's credit for every
 * record).
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nb_ct_seen);
} ct_seen SEC(".maps");

/* struct bpf_array (kernel/bpf/arraymap.c): a per-CPU map's value pointers. */
struct bpf_array___nb {
	union {
		char value[0];
		void *pptrs[0];
	};
} __attribute__((preserve_access_index));

/*
 * This CPU's per-CPU offset (per_cpu_offset()): its slot of ct_seen minus
 * ct_seen's __percpu pointer. The kernel's own (this_cpu_off,
 * __per_cpu_offset) cannot be reached: ksyms of data need
 * CONFIG_KALLSYMS_ALL (off on this 6.18), and a gcc-built kernel's BTF has
 * no percpu type tag for bpf_this_cpu_ptr(net->ct.stat).
 */
static __always_inline bool nb_this_cpu_off(struct nb_ct_seen *slot, __u64 *off)
{
	void *map = &ct_seen;
	__u64 map_addr = 0, here = 0, pptr = 0;

	if (!slot->cpu_off_known) {
		/* Through the stack: the verifier would refuse arithmetic on
		 * the map and map value pointers themselves. */
		bpf_probe_read_kernel(&map_addr, sizeof(map_addr), &map);
		bpf_probe_read_kernel(&here, sizeof(here), &slot);
		if (bpf_probe_read_kernel(&pptr, sizeof(pptr),
					  (void *)(map_addr + bpf_core_field_offset(struct bpf_array___nb, pptrs))) ||
		    !pptr)
			return false;
		slot->cpu_off = here - pptr;
		slot->cpu_off_known = 1;
	}
	*off = slot->cpu_off;
	return true;
}

/* net->ct.stat on this CPU: insert_failed and drop, in one read where
 * clash_resolve alone sits between them (5.10+, bc92470413f3). */
static __always_inline bool nb_ct_stat_now(struct net *net, __u64 cpu_off, __u32 *insert_failed, __u32 *drop)
{
	__u32 at = bpf_core_field_offset(struct ip_conntrack_stat, insert_failed);
	void *stat = BPF_CORE_READ(net, ct.stat);
	__u32 three[3];

	if (!stat)
		return false;
	stat += cpu_off;
	if (bpf_core_field_offset(struct ip_conntrack_stat, drop) == at + 8) {
		if (bpf_probe_read_kernel(three, sizeof(three), stat + at))
			return false;
		*insert_failed = three[0];
		*drop = three[2];
		return true;
	}
	return bpf_probe_read_kernel(insert_failed, sizeof(*insert_failed), stat + at) == 0 &&
	       bpf_probe_read_kernel(drop, sizeof(*drop), stat + bpf_core_field_offset(struct ip_conntrack_stat, drop)) ==
		       0;
}

/* nfct: skb->_nfct, read by the caller (a direct load on tp_btf). */
static __always_inline bool clash_candidate(struct sk_buff *skb, unsigned long nfct)
{
	struct nf_conn *ct = (struct nf_conn *)(nfct & NFCT_PTRMASK_);
	struct nb_ct_seen *slot;
	__u32 zero = 0, insert_failed, drop;
	bool moved;
	struct net *net;
	__u64 cpu_off;

	if (ct) {
		__u64 status_net[2] = {};

		/* status and ct_net side by side (nf_conn since 4.x): one read */
		if (bpf_core_field_offset(struct nf_conn, ct_net) == bpf_core_field_offset(struct nf_conn, status) + 8)
			bpf_probe_read_kernel(status_net, sizeof(status_net),
					      (void *)ct + bpf_core_field_offset(struct nf_conn, status));
		else
			status_net[0] = BPF_CORE_READ(ct, status), status_net[1] = (__u64)BPF_CORE_READ(ct, ct_net.net);
		if (status_net[0] & (1UL << IPS_CONFIRMED_BIT_))
			return false;
		net = (struct net *)status_net[1];
	} else {
		/* nb_skb_netns()'s namespace: the device's, else the socket's */
		struct net_device *dev = BPF_CORE_READ(skb, dev);
		struct sock *sk = BPF_CORE_READ(skb, sk);

		net = dev ? BPF_CORE_READ(dev, nd_net.net) : sk ? BPF_CORE_READ(sk, __sk_common.skc_net.net) : NULL;
	}
	slot = bpf_map_lookup_elem(&ct_seen, &zero);
	if (!slot)
		return true; /* cannot tell: user space decides */
	/* slot->net passed this check when it was stored */
	if (cfg_netns && (__u64)net != slot->net && nb_net_ino(net) != cfg_netns)
		return false;
	if (!net || !nb_this_cpu_off(slot, &cpu_off) || !nb_ct_stat_now(net, cpu_off, &insert_failed, &drop))
		return true;
	moved = slot->net != (__u64)net || (ct ? insert_failed != slot->insert_failed : drop != slot->drop);
	slot->net = (__u64)net;
	slot->insert_failed = insert_failed;
	slot->drop = drop;
	if (!moved && ct)
		slot->rejected++;
	return moved;
}

#endif /* NATBPF_CLASH_FILTER_H */

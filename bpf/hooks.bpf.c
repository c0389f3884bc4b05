// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Netfilter hook verdicts and drops.
 *
 * Variants of one hook are compiled side by side; user space keeps the one
 * the running kernel allows (bpf_program__set_autoload) and disables the rest:
 *   hook verdict: fexit/nf_hook_slow -> kprobe+kretprobe/nf_hook_slow
 *   drops:        tp_btf/kfree_skb (with drop reason) -> raw_tp/kfree_skb
 */
#include "natbpf.bpf.h"

/* Numeric value of SKB_DROP_REASON_NETFILTER_DROP on this kernel; it moved
 * from 6 (5.18) to 12 (6.18), so it comes from CO-RE, never a constant. */
static __always_inline bool nb_is_netfilter_reason(__u32 reason)
{
	if (!bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP))
		return false;
	return reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP);
}

static __always_inline void emit_hook_drop(__u8 origin, struct sk_buff *skb, __u8 hook, __u8 pf, __u16 n,
					   struct net_device *in, struct net_device *out, struct net *net,
					   int ret)
{
	struct nb_hook_drop *ev = nb_reserve(sizeof(*ev), NB_EV_HOOK_DROP, origin);

	if (!ev)
		return;
	ev->skb = (__u64)skb;
	ev->ret = ret;
	ev->hook = hook;
	ev->pf = pf;
	ev->num_hook_entries = n;
	ev->in_ifindex = in ? BPF_CORE_READ(in, ifindex) : 0;
	ev->out_ifindex = out ? BPF_CORE_READ(out, ifindex) : 0;
	ev->netns_ino = nb_net_ino(net);
	ev->pad = 0;
	nb_submit(ev);
}

/* A negative return means the packet was dropped and the skb freed; never
 * dereference skb here. state and e stay valid (caller's stack, RCU). */
SEC("fexit/nf_hook_slow")
int BPF_PROG(hook_slow_fexit, struct sk_buff *skb, struct nf_hook_state *state, const struct nf_hook_entries *e,
	     unsigned int s, int ret)
{
	struct net *net;

	if (ret >= 0)
		return 0;
	net = BPF_CORE_READ(state, net);
	if (cfg_netns && nb_net_ino(net) != cfg_netns)
		return 0;
	emit_hook_drop(NB_ORIGIN_FENTRY, skb, nb_state_hook(state), nb_state_pf(state),
		       BPF_CORE_READ(e, num_hook_entries), BPF_CORE_READ(state, in), BPF_CORE_READ(state, out),
		       net, ret);
	return 0;
}

struct hook_args {
	struct sk_buff *skb;
	struct nf_hook_state *state;
	const struct nf_hook_entries *e;
};

/* kretprobes see no arguments: keep them per task. A REJECT sends its reset
 * through a nested nf_hook_slow on the same task, which overwrites the entry;
 * that nested call returns first, so the outer drop is then missed, not
 * misattributed. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct hook_args);
} hook_args_by_task SEC(".maps");

SEC("kprobe/nf_hook_slow")
int BPF_KPROBE(hook_slow_kprobe, struct sk_buff *skb, struct nf_hook_state *state, const struct nf_hook_entries *e)
{
	__u64 key = bpf_get_current_pid_tgid();
	struct hook_args a = { .skb = skb, .state = state, .e = e };

	bpf_map_update_elem(&hook_args_by_task, &key, &a, BPF_ANY);
	return 0;
}

SEC("kretprobe/nf_hook_slow")
int BPF_KRETPROBE(hook_slow_kretprobe, int ret)
{
	__u64 key = bpf_get_current_pid_tgid();
	struct hook_args *a = bpf_map_lookup_elem(&hook_args_by_task, &key);
	const struct nf_hook_entries *e;
	struct nf_hook_state *state;
	struct net *net;

	if (!a)
		return 0;
	/* Local copies: a->field inside BPF_CORE_READ would be relocated
	 * against our own struct. */
	state = a->state;
	e = a->e;
	if (ret < 0) {
		net = BPF_CORE_READ(state, net);
		if (!cfg_netns || nb_net_ino(net) == cfg_netns)
			emit_hook_drop(NB_ORIGIN_KPROBE, a->skb, nb_state_hook(state), nb_state_pf(state),
				       BPF_CORE_READ(e, num_hook_entries), BPF_CORE_READ(state, in),
				       BPF_CORE_READ(state, out), net, ret);
	}
	bpf_map_delete_elem(&hook_args_by_task, &key);
	return 0;
}

static __always_inline void handle_kfree_skb(__u8 origin, struct sk_buff *skb, void *location, __u32 reason,
					     bool has_reason)
{
	struct nb_skb_drop *ev;
	bool netfilter = has_reason && nb_is_netfilter_reason(reason);
	struct nb_pkt pkt = {};
	struct nb_ct ct = {};
	struct nf_conn *nfct;

	/* Without drop reasons every kfree_skb looks alike: only a traced flow
	 * is worth reporting then. */
	if (!netfilter && !cfg_all_reasons && has_reason)
		return;
	/* Filter on the stack first: most drops on a busy host are not the
	 * user's flow, and a ring-buffer reserve+discard costs more. */
	nb_read_pkt(skb, &pkt);
	nfct = nb_skb_ct(skb);
	if (nfct)
		nb_read_ct(nfct, &ct);
	if (!nb_pkt_matches(&pkt, &ct))
		return;
	ev = nb_reserve(sizeof(*ev), NB_EV_SKB_DROP, origin);
	if (!ev)
		return;
	ev->skb = (__u64)skb;
	ev->location = (__u64)location;
	ev->reason = reason;
	ev->has_reason = has_reason;
	ev->has_ct = nfct != NULL;
	ev->pad = 0;
	ev->pkt = pkt;
	ev->ct = ct;
	nb_submit(ev);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(kfree_skb_btf, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	handle_kfree_skb(NB_ORIGIN_TP_BTF, skb, location, reason, true);
	return 0;
}

/* Kernels before 5.17 pass no reason: two arguments only, or attach fails. */
SEC("raw_tp/kfree_skb")
int BPF_PROG(kfree_skb_raw, struct sk_buff *skb, void *location)
{
	handle_kfree_skb(NB_ORIGIN_RAW_TP, skb, location, 0, false);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Conntrack confirmation and clash resolution.
 *   confirm: fentry+fexit/__nf_conntrack_confirm -> kprobe+kretprobe
 *   clash:   fentry+fexit/nf_ct_resolve_clash    -> kprobe+kretprobe
 * nf_ct_resolve_clash is a noinline function since 5.6 (6a757c07e51f); on
 * older kernels it is inlined and the plan leaves it out.
 */
#include "natbpf.bpf.h"

#define IPS_NAT_CLASH_BIT_ 12 /* shares the bit with IPS_UNTRACKED */

/*
 * The loser is read at entry, not at exit: when a clash is resolved by
 * merging, __nf_ct_resolve_clash drops the last reference to the loser and
 * its memory (SLAB_TYPESAFE_BY_RCU) may hold another entry by the time the
 * exit program runs.
 */
struct confirm_args {
	struct sk_buff *skb;
	struct nf_conn *loser;
	struct nb_ct loser_ct;
};

/* Keyed by skb for fentry (nesting-safe), by task for kprobes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct confirm_args);
} confirm_args_map SEC(".maps");

struct clash_args {
	struct sk_buff *skb;
	struct nf_conn *loser;
	struct nf_conntrack_tuple_hash *h;
	struct nb_ct loser_ct; /* read at entry, see confirm_args */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct clash_args);
} clash_args_map SEC(".maps");

static __always_inline void confirm_enter(__u64 key, struct sk_buff *skb)
{
	struct confirm_args a = {};

	a.skb = skb;
	a.loser = nb_skb_ct(skb);
	if (a.loser)
		nb_read_ct(a.loser, &a.loser_ct);
	bpf_map_update_elem(&confirm_args_map, &key, &a, BPF_ANY);
}

/* __nf_conntrack_confirm never frees the skb (nf_hook_slow does after an
 * NF_DROP), so reading it at exit is safe. */
static __always_inline void confirm_exit(__u8 origin, __u64 key, __u32 ret)
{
	struct confirm_args *a = bpf_map_lookup_elem(&confirm_args_map, &key);
	struct nb_ct_confirm *ev;
	struct nf_conn *now, *loser;
	__u64 status;
	__u32 flags = 0;

	if (!a)
		return;
	/* Copy pointers out of the map value before BPF_CORE_READ: inside the
	 * macro, a->field would become a CO-RE relocation against our own
	 * struct, which no kernel BTF has. */
	loser = a->loser;
	if (!loser)
		goto out;
	now = nb_skb_ct(a->skb);
	if (now != loser)
		flags |= NB_CONFIRM_MERGED;
	/* Merged: the loser may be freed, use the entry-time copy. Not merged:
	 * it is still the skb's entry, and IPS_NAT_CLASH is set during confirm. */
	if (flags & NB_CONFIRM_MERGED)
		bpf_probe_read_kernel(&status, sizeof(status), &a->loser_ct.status);
	else
		status = BPF_CORE_READ(loser, status);
	if (ret == NF_ACCEPT && !(flags & NB_CONFIRM_MERGED) && (status & (1UL << IPS_NAT_CLASH_BIT_)))
		flags |= NB_CONFIRM_NAT_CLASH;
	if (ret == NF_DROP) {
		__u32 zero = 0;
		__u64 *dropped = bpf_map_lookup_elem(&nb_confirm_drop, &zero);

		/* nf_hook_slow frees it next, on this CPU: natbpf drops keys
		 * that kfree_skb as a confirm failure. */
		if (dropped)
			*dropped = (__u64)a->skb;
	}
	if (cfg_count_drops)
		goto out; /* natbpf drops keys the drop; it needs no record */
	if (ret == NF_ACCEPT && !flags)
		goto out; /* the normal insert: nothing to explain */
	ev = nb_reserve(sizeof(*ev), NB_EV_CT_CONFIRM, origin);
	if (!ev)
		goto out;
	__builtin_memset(&ev->pkt, 0, sizeof(ev->pkt) + 2 * sizeof(ev->loser));
	ev->skb = (__u64)a->skb;
	ev->ret = ret;
	ev->flags = flags;
	nb_read_pkt(a->skb, &ev->pkt);
	__builtin_memcpy(&ev->loser, &a->loser_ct, sizeof(ev->loser));
	ev->loser.status = status;
	if (flags & NB_CONFIRM_MERGED)
		nb_read_ct(now, &ev->winner);
	nb_submit_if_ct_matches(ev, &ev->loser);
out:
	bpf_map_delete_elem(&confirm_args_map, &key);
}

SEC("fentry/__nf_conntrack_confirm")
int BPF_PROG(confirm_fentry, struct sk_buff *skb)
{
	confirm_enter((__u64)skb, skb);
	return 0;
}

SEC("fexit/__nf_conntrack_confirm")
int BPF_PROG(confirm_fexit, struct sk_buff *skb, int ret)
{
	confirm_exit(NB_ORIGIN_FENTRY, (__u64)skb, ret);
	return 0;
}

SEC("kprobe/__nf_conntrack_confirm")
int BPF_KPROBE(confirm_kprobe, struct sk_buff *skb)
{
	confirm_enter(bpf_get_current_pid_tgid(), skb);
	return 0;
}

SEC("kretprobe/__nf_conntrack_confirm")
int BPF_KRETPROBE(confirm_kretprobe, int ret)
{
	confirm_exit(NB_ORIGIN_KPROBE, bpf_get_current_pid_tgid(), ret);
	return 0;
}

static __always_inline void clash_enter(__u64 key, struct sk_buff *skb, struct nf_conntrack_tuple_hash *h)
{
	struct clash_args a = {};

	a.skb = skb;
	a.loser = nb_skb_ct(skb);
	a.h = h;
	if (a.loser)
		nb_read_ct(a.loser, &a.loser_ct);

	bpf_map_update_elem(&clash_args_map, &key, &a, BPF_ANY);
}

/* nf_ct_tuplehash_to_ctrack(): h sits in ct->tuplehash[h->tuple.dst.dir]. */
static __always_inline struct nf_conn *nb_tuplehash_to_ct(struct nf_conntrack_tuple_hash *h)
{
	__u8 dir = BPF_CORE_READ(h, tuple.dst.dir);

	return (void *)h - (bpf_core_field_offset(struct nf_conn, tuplehash) +
			    (dir & 1) * bpf_core_type_size(struct nf_conntrack_tuple_hash));
}

static __always_inline void clash_exit(__u8 origin, __u64 key, __u32 ret)
{
	struct clash_args *a = bpf_map_lookup_elem(&clash_args_map, &key);
	struct nb_ct_clash *ev;

	if (!a)
		return;
	ev = nb_reserve(sizeof(*ev), NB_EV_CT_CLASH, origin);
	if (!ev)
		goto out;
	__builtin_memset(&ev->loser, 0, 2 * sizeof(ev->loser));
	ev->skb = (__u64)a->skb;
	ev->ret = ret;
	ev->pad = 0;
	__builtin_memcpy(&ev->loser, &a->loser_ct, sizeof(ev->loser));
	nb_read_ct(nb_tuplehash_to_ct(a->h), &ev->winner);
	nb_submit_if_ct_matches(ev, &ev->loser);
out:
	bpf_map_delete_elem(&clash_args_map, &key);
}

SEC("fentry/nf_ct_resolve_clash")
int BPF_PROG(clash_fentry, struct sk_buff *skb, struct nf_conntrack_tuple_hash *h)
{
	clash_enter((__u64)skb, skb, h);
	return 0;
}

SEC("fexit/nf_ct_resolve_clash")
int BPF_PROG(clash_fexit, struct sk_buff *skb, struct nf_conntrack_tuple_hash *h, __u32 repl_idx, int ret)
{
	clash_exit(NB_ORIGIN_FENTRY, (__u64)skb, ret);
	return 0;
}

SEC("kprobe/nf_ct_resolve_clash")
int BPF_KPROBE(clash_kprobe, struct sk_buff *skb, struct nf_conntrack_tuple_hash *h)
{
	clash_enter(bpf_get_current_pid_tgid(), skb, h);
	return 0;
}

SEC("kretprobe/nf_ct_resolve_clash")
int BPF_KRETPROBE(clash_kretprobe, int ret)
{
	clash_exit(NB_ORIGIN_KPROBE, bpf_get_current_pid_tgid(), ret);
	return 0;
}

/*
 * Conntrack's reason for an INVALID packet: the trackers call
 * nf_l4proto_log_invalid(skb, state, protonum, fmt, ...) (5.14+, variadic,
 * so kprobe only) with a plain message ("%s", msg) or a message of
 * nf_ct_l4proto_log_invalid / nf_tcp_log_invalid passed on as "%pV" (a
 * struct va_format, include/linux/printk.h), nested at most twice.
 */
struct nb_va_format {
	const char *fmt;
	void *va; /* va_list * */
};

/* x86-64's va_list element (the SysV ABI): the first integer argument is at
 * reg_save_area + gp_offset while gp_offset < 48, else on the stack. */
struct nb_va_list {
	__u32 gp_offset;
	__u32 fp_offset;
	void *overflow_arg_area;
	void *reg_save_area;
};

static __always_inline void *first_va_arg(void *va)
{
	struct nb_va_list l = {};
	void *arg = NULL;

	if (bpf_probe_read_kernel(&l, sizeof(l), va))
		return NULL;
	if (l.gp_offset < 48)
		bpf_probe_read_kernel(&arg, sizeof(arg), l.reg_save_area + l.gp_offset);
	else
		bpf_probe_read_kernel(&arg, sizeof(arg), l.overflow_arg_area);
	return arg;
}

SEC("kprobe/nf_l4proto_log_invalid")
int BPF_KPROBE(ct_invalid_kprobe, struct sk_buff *skb, const void *state, __u8 protonum, const char *fmt)
{
	struct nb_ct invalid_ct = {};
	struct nb_ct_invalid *ev;
	const char *f = fmt;
	void *arg = (void *)PT_REGS_PARM5(ctx);
	char head[4];
	int i;

	ev = nb_reserve(sizeof(*ev), NB_EV_CT_INVALID, NB_ORIGIN_KPROBE);
	if (!ev)
		return 0;
	__builtin_memset(&ev->pkt, 0, sizeof(ev->pkt));
	nb_read_pkt(skb, &ev->pkt);
	if (!nb_pkt_matches(&ev->pkt, &invalid_ct)) {
		bpf_ringbuf_discard(ev, 0);
		return 0;
	}
	ev->skb = (__u64)skb;
	ev->protonum = protonum;
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
	ev->reason[0] = 0;
	for (i = 0; i < 3; i++) {
		if (bpf_probe_read_kernel(head, sizeof(head), f))
			break;
		if (head[0] == '%' && head[1] == 's' && head[2] == 0) {
			f = arg;
			break;
		}
#if defined(__TARGET_ARCH_x86)
		if (head[0] == '%' && head[1] == 'p' && head[2] == 'V' && head[3] == 0) {
			struct nb_va_format vaf = {};

			if (bpf_probe_read_kernel(&vaf, sizeof(vaf), arg))
				break;
			f = vaf.fmt;
			arg = first_va_arg(vaf.va);
			continue;
		}
#endif
		break;
	}
	if (f)
		bpf_probe_read_kernel_str(ev->reason, sizeof(ev->reason), f);
	nb_submit(ev);
	return 0;
}

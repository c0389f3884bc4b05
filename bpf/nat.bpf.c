// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * SNAT/DNAT allocation forensics.
 *   setup: fentry+fexit/nf_nat_setup_info        -> kprobe+kretprobe
 *   taken: fexit/nf_conntrack_tuple_taken         -> kprobe+kretprobe
 *   harder: fexit/nf_conntrack_find_get           -> kprobe+kretprobe
 * nf_nat_l4proto_unique_tuple and get_unique_tuple are static and inlined on
 * the kernels we know, so the search is observed through its calls to
 * nf_conntrack_tuple_taken(tuple, ignored_conntrack): ignored_conntrack is
 * the ct being NATed, the key that ties probes to their allocation. On 6.5+
 * the last 32 candidates for a TCP SYN go through nf_nat_used_tuple_harder,
 * which looks the reply tuple up with nf_conntrack_find_get instead (and may
 * evict a closing holder); those calls carry no ct, so they are tied to the
 * allocation the task is in (nf_nat_setup_info runs them on its own stack).
 */
#include "natbpf.bpf.h"

struct nat_state {
	struct nf_conn *ct;
	struct nb_tuple before;
	struct nb_nat_range range;
	__u32 maniptype;
	__u32 attempts;
	__u32 taken;
	struct nb_tuple last_probe;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* ct pointer */
	__type(value, struct nat_state);
} nat_by_ct SEC(".maps");

/* For kretprobes: which ct (and which probed tuple) the task is working on. */
struct taken_args {
	struct nf_conn *ct;
	const struct nf_conntrack_tuple *tuple;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct taken_args);
} args_by_task SEC(".maps");

static __always_inline void setup_enter(struct nf_conn *ct, const struct nf_nat_range2 *range, __u32 maniptype)
{
	struct nat_state st = {};
	__u64 key = (__u64)ct;

	st.ct = ct;
	st.maniptype = maniptype;
	nb_read_tuple(&ct->tuplehash[0].tuple, &st.before);
	if (range) {
		st.range.flags = BPF_CORE_READ(range, flags);
		st.range.min_port = bpf_ntohs(BPF_CORE_READ(range, min_proto.all));
		st.range.max_port = bpf_ntohs(BPF_CORE_READ(range, max_proto.all));
		bpf_probe_read_kernel(st.range.min_addr, NB_ADDR_LEN, &range->min_addr);
		bpf_probe_read_kernel(st.range.max_addr, NB_ADDR_LEN, &range->max_addr);
	}
	bpf_map_update_elem(&nat_by_ct, &key, &st, BPF_ANY);
	{
		__u64 task = bpf_get_current_pid_tgid();
		struct taken_args a = { .ct = ct };

		bpf_map_update_elem(&args_by_task, &task, &a, BPF_ANY);
	}
}

static __always_inline void setup_exit(__u8 origin, struct nf_conn *ct, __u32 ret)
{
	__u64 key = (__u64)ct;
	struct nat_state *st = bpf_map_lookup_elem(&nat_by_ct, &key);
	struct nb_nat_setup *ev;

	if (!st)
		return;
	ev = nb_reserve(sizeof(*ev), NB_EV_NAT_SETUP, origin);
	if (!ev)
		goto out;
	__builtin_memset(&ev->ct, 0, sizeof(ev->ct));
	nb_read_ct(ct, &ev->ct);
	ev->before = st->before;
	ev->range = st->range;
	ev->maniptype = st->maniptype;
	ev->ret = ret;
	ev->attempts = st->attempts;
	ev->taken = st->taken;
	ev->last_probe = st->last_probe;
	nb_submit_if_ct_matches(ev, &ev->ct);
out:
	bpf_map_delete_elem(&nat_by_ct, &key);
}

static __always_inline void taken_result(struct nf_conn *ct, const struct nf_conntrack_tuple *tuple, int ret)
{
	__u64 key = (__u64)ct;
	struct nat_state *st = bpf_map_lookup_elem(&nat_by_ct, &key);

	if (!st)
		return;
	st->attempts++;
	if (ret)
		st->taken++;
	/* nf_nat_used_tuple passes the inverted (reply) tuple: store it as is. */
	nb_read_tuple(tuple, &st->last_probe);
}

SEC("fentry/nf_nat_setup_info")
int BPF_PROG(nat_setup_fentry, struct nf_conn *ct, const struct nf_nat_range2 *range, int maniptype)
{
	setup_enter(ct, range, maniptype);
	return 0;
}

SEC("fexit/nf_nat_setup_info")
int BPF_PROG(nat_setup_fexit, struct nf_conn *ct, const struct nf_nat_range2 *range, int maniptype,
	     unsigned int ret)
{
	__u64 task = bpf_get_current_pid_tgid();

	setup_exit(NB_ORIGIN_FENTRY, ct, ret);
	bpf_map_delete_elem(&args_by_task, &task);
	return 0;
}

SEC("fexit/nf_conntrack_tuple_taken")
int BPF_PROG(tuple_taken_fexit, const struct nf_conntrack_tuple *tuple, const struct nf_conn *ignored, int ret)
{
	taken_result((struct nf_conn *)ignored, tuple, ret);
	return 0;
}

SEC("kprobe/nf_nat_setup_info")
int BPF_KPROBE(nat_setup_kprobe, struct nf_conn *ct, const struct nf_nat_range2 *range, int maniptype)
{
	setup_enter(ct, range, maniptype);
	return 0;
}

SEC("kretprobe/nf_nat_setup_info")
int BPF_KRETPROBE(nat_setup_kretprobe, unsigned int ret)
{
	__u64 task = bpf_get_current_pid_tgid();
	struct taken_args *a = bpf_map_lookup_elem(&args_by_task, &task);

	if (!a)
		return 0;
	setup_exit(NB_ORIGIN_KPROBE, a->ct, ret);
	bpf_map_delete_elem(&args_by_task, &task);
	return 0;
}

SEC("kprobe/nf_conntrack_tuple_taken")
int BPF_KPROBE(tuple_taken_kprobe, const struct nf_conntrack_tuple *tuple, const struct nf_conn *ignored)
{
	__u64 task = bpf_get_current_pid_tgid();
	struct taken_args *a = bpf_map_lookup_elem(&args_by_task, &task);

	/* Only probes made inside an allocation we watch; remember the tuple. */
	if (a && a->ct == ignored)
		a->tuple = tuple;
	return 0;
}

SEC("kretprobe/nf_conntrack_tuple_taken")
int BPF_KRETPROBE(tuple_taken_kretprobe, int ret)
{
	__u64 task = bpf_get_current_pid_tgid();
	struct taken_args *a = bpf_map_lookup_elem(&args_by_task, &task);

	if (!a || !a->tuple)
		return 0;
	taken_result(a->ct, a->tuple, ret);
	a->tuple = NULL;
	return 0;
}

/* nf_nat_used_tuple_harder's lookup: a holder found means the candidate is
 * taken (unless it was evicted, which the next probe or the confirm shows). */
SEC("fexit/nf_conntrack_find_get")
int BPF_PROG(find_get_fexit, struct net *net, const struct nf_conntrack_zone *zone,
	     const struct nf_conntrack_tuple *tuple, struct nf_conntrack_tuple_hash *ret)
{
	__u64 task = bpf_get_current_pid_tgid();
	struct taken_args *a = bpf_map_lookup_elem(&args_by_task, &task);

	if (a)
		taken_result(a->ct, tuple, ret != NULL);
	return 0;
}

SEC("kprobe/nf_conntrack_find_get")
int BPF_KPROBE(find_get_kprobe, struct net *net, const struct nf_conntrack_zone *zone,
	       const struct nf_conntrack_tuple *tuple)
{
	__u64 task = bpf_get_current_pid_tgid();
	struct taken_args *a = bpf_map_lookup_elem(&args_by_task, &task);

	if (a)
		a->tuple = tuple;
	return 0;
}

SEC("kretprobe/nf_conntrack_find_get")
int BPF_KRETPROBE(find_get_kretprobe, struct nf_conntrack_tuple_hash *ret)
{
	__u64 task = bpf_get_current_pid_tgid();
	struct taken_args *a = bpf_map_lookup_elem(&args_by_task, &task);

	if (!a || !a->tuple)
		return 0;
	taken_result(a->ct, a->tuple, ret != NULL);
	a->tuple = NULL;
	return 0;
}

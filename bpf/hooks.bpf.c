// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Netfilter hook verdicts and drops.
 *
 * Variants of one hook are compiled side by side; user space keeps the one
 * the running kernel allows (bpf_program__set_autoload) and disables the rest:
 *   hook verdict: fexit/nf_hook_slow -> kprobe+kretprobe/nf_hook_slow
 *   drops:        tp_btf/kfree_skb (with drop reason) -> raw_tp/kfree_skb
 *
 * natbpf drops (cfg_count_drops) counts every drop here in a per-CPU map
 * and sends one example packet per key and second; trace and clash get a
 * record per netfilter drop of their flow.
 */
#include "natbpf.bpf.h"
#include "clash_filter.bpf.h"

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

/* natbpf drops: every drop counted per CPU by key. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NB_DROP_KEYS_MAX);
	__type(key, struct nb_drop_key);
	__type(value, struct nb_drop_value);
} drop_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nb_drop_stash);
} drop_stash SEC(".maps");

#define NB_EXAMPLE_EVERY_NS 1000000000ULL

/* Reading the clock costs about as much as counting: a key's clock is
 * checked on each of its first drops on a CPU and then on every 16th, which
 * keeps examples at one per second at most. */
#define NB_CLOCK_EVERY 16

/* Counts one drop of key on this CPU; true when an example of it is due
 * (none sent by this CPU in the last second). */
static __always_inline bool count_drop(const struct nb_drop_key *key)
{
	struct nb_drop_value *v = bpf_map_lookup_elem(&drop_counts, key);
	struct nb_drop_value first = { .count = 1 };
	__u64 now;

	if (v) {
		v->count++;
		if (v->count > NB_CLOCK_EVERY && (v->count % NB_CLOCK_EVERY))
			return false;
		now = bpf_ktime_get_ns();
		if (now - v->last_example_ns < NB_EXAMPLE_EVERY_NS)
			return false;
		v->last_example_ns = now;
		return true;
	}
	first.last_example_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&drop_counts, key, &first, BPF_NOEXIST) == 0)
		return true;
	/* Another CPU created the key meanwhile (its per-CPU slot of ours is 0). */
	v = bpf_map_lookup_elem(&drop_counts, key);
	if (v) {
		v->count++;
		return false;
	}
	nb_stat_inc(NB_STAT_DROP_UNKEYED);
	return false;
}

static __always_inline void send_drop_example(__u8 origin, struct sk_buff *skb, const struct nb_drop_key *key,
					      struct nf_conn *nfct)
{
	struct nb_drop_example *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);

	if (!ev) {
		nb_stat_inc(NB_STAT_EXAMPLE_LOST);
		return;
	}
	ev->hdr.kind = NB_EV_DROP_EXAMPLE;
	ev->hdr.version = NB_EVENT_VERSION;
	ev->hdr.size = sizeof(*ev);
	ev->hdr.origin = origin;
	ev->hdr.cpu = bpf_get_smp_processor_id();
	ev->hdr.ts_ns = bpf_ktime_get_ns();
	ev->key = *key;
	ev->skb = (__u64)skb;
	ev->has_ct = nfct != NULL;
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
	__builtin_memset(&ev->pkt, 0, sizeof(ev->pkt) + sizeof(ev->ct));
	nb_read_pkt(skb, &ev->pkt);
	if (nfct)
		nb_read_ct(nfct, &ev->ct);
	nb_submit(ev);
}

/*
 * The key's packet fields on the hot path (tp_btf, where skb is a BTF
 * pointer): direct loads instead of a helper call per field, and one read
 * of the network and transport headers. Every drop on the host runs this.
 */
static __always_inline struct nf_conn *key_from_skb_btf(struct sk_buff *skb, struct nb_drop_key *key)
{
	struct net_device *dev = skb->dev;
	struct sock *sk = skb->sk;
	unsigned char *l3 = skb->head + skb->network_header;
	__u8 h[44];
	__u16 ports_at = 0;

	/* One load each: the verifier wants the NULL check on the register
	 * that is dereferenced. */
	barrier_var(sk);
	if (dev)
		key->netns_ino = dev->nd_net.net->ns.inum;
	else if (sk)
		key->netns_ino = sk->__sk_common.skc_net.net->ns.inum;
	if (bpf_probe_read_kernel(h, sizeof(h), l3) == 0) {
		if ((h[0] >> 4) == 4) {
			key->family = NFPROTO_IPV4;
			key->l4proto = h[9];
			if ((h[0] & 0xf) == 5)
				ports_at = 20;
		} else if ((h[0] >> 4) == 6) {
			key->family = NFPROTO_IPV6;
			key->l4proto = h[6];
			ports_at = 40;
		}
		if (key->l4proto == IPPROTO_TCP_ || key->l4proto == IPPROTO_UDP_) {
			if (ports_at == 20)
				key->dport = (h[22] << 8) | h[23];
			else if (ports_at == 40)
				key->dport = (h[42] << 8) | h[43];
			else if (key->family == NFPROTO_IPV4) {
				__be16 port[2] = {};

				bpf_probe_read_kernel(port, sizeof(port), l3 + (h[0] & 0xf) * 4);
				key->dport = bpf_ntohs(port[1]);
			}
		}
	}
	if (!bpf_core_field_exists(skb->_nfct))
		return NULL;
	return (struct nf_conn *)(skb->_nfct & NFCT_PTRMASK_);
}

/* The same key where skb is a plain address (raw_tp: kernels before 5.17). */
static __always_inline struct nf_conn *key_from_skb_probe(struct sk_buff *skb, struct nb_drop_key *key)
{
	struct nb_pkt pkt = {};

	nb_read_pkt(skb, &pkt);
	key->netns_ino = pkt.netns_ino;
	key->family = pkt.family;
	key->l4proto = pkt.l4proto;
	key->dport = pkt.dport;
	return nb_skb_ct(skb);
}

/* natbpf drops' kfree_skb, once the key holds the packet's fields: add the
 * conntrack state, count the drop (or leave it for nf_hook_slow's exit to
 * count with its hook), send an example when one is due. */
static __always_inline void count_kfree_skb(__u8 origin, struct sk_buff *skb, void *location, __u32 reason,
					    bool has_reason, struct nb_drop_key *key, struct nf_conn *nfct)
{
	struct nb_drop_stash *stash;
	__u32 zero = 0;
	bool example;

	if (nfct) {
		__u64 status = BPF_CORE_READ(nfct, status);

		key->flags |= NB_DROP_HAS_CT;
		if (status & (1UL << IPS_CONFIRMED_BIT_))
			key->flags |= NB_DROP_CT_CONFIRMED;
		if (status & ((1UL << IPS_SRC_NAT_DONE_BIT_) | (1UL << IPS_DST_NAT_DONE_BIT_)))
			key->flags |= NB_DROP_CT_NAT;
		if (!key->netns_ino)
			key->netns_ino = nb_net_ino(BPF_CORE_READ(nfct, ct_net.net));
	}
	if (cfg_netns && key->netns_ino != cfg_netns)
		return;
	key->location = (__u64)location;
	key->reason = reason;
	if (has_reason)
		key->flags |= NB_DROP_HAS_REASON;
	key->hook = NB_HOOK_UNKNOWN;
	if (cfg_confirm_exit) {
		__u64 *confirm_dropped = bpf_map_lookup_elem(&nb_confirm_drop, &zero);

		if (confirm_dropped && *confirm_dropped == (__u64)skb) {
			key->flags |= NB_DROP_CONFIRM_FAILED;
			*confirm_dropped = 0;
		}
	}

	stash = cfg_hook_exit && (!has_reason || nb_is_netfilter_reason(reason))
			? bpf_map_lookup_elem(&drop_stash, &zero)
			: NULL;
	if (!stash) {
		if (count_drop(key))
			send_drop_example(origin, skb, key, nfct);
		return;
	}
	if (stash->skb)
		count_drop(&stash->key);
	/* The example is keyed without the hook: one per second for the whole
	 * hookless key, gated by its (zero-count) entry. */
	example = false;
	{
		struct nb_drop_value *gate = bpf_map_lookup_elem(&drop_counts, key);
		__u64 now = bpf_ktime_get_ns();
		struct nb_drop_value first = { .count = 0, .last_example_ns = now };

		if (!gate) {
			example = bpf_map_update_elem(&drop_counts, key, &first, BPF_NOEXIST) == 0;
		} else if (now - gate->last_example_ns >= NB_EXAMPLE_EVERY_NS) {
			gate->last_example_ns = now;
			example = true;
		}
	}
	if (example)
		send_drop_example(origin, skb, key, nfct);
	stash->skb = (__u64)skb;
	stash->key = *key;
	stash->example_sent = example;
}

/* nf_hook_slow returned < 0 for skb: count the stashed drop with its hook. */
static __always_inline void count_hook_drop(__u8 origin, struct sk_buff *skb, __u8 hook, __u8 pf, __u16 n,
					    struct net_device *in, struct net_device *out, struct net *net, int ret)
{
	__u32 zero = 0;
	struct nb_drop_stash *stash = bpf_map_lookup_elem(&drop_stash, &zero);
	struct nb_drop_key key;
	bool example;

	if (!stash || stash->skb != (__u64)skb)
		return;
	key = stash->key;
	key.hook = hook;
	example = stash->example_sent;
	stash->skb = 0;
	count_drop(&key);
	if (example)
		emit_hook_drop(origin, skb, hook, pf, n, in, out, net, ret);
}

/* trace: kfree_skb saw this skb's nf_trace bit set (traced_drop_seen) just
 * before nf_hook_slow returned its drop: only a traced packet's hook drop is
 * sent. Without it a flood to the traced port filled the ring buffer on the
 * fentry and kprobe paths while the marking rule's rate limit let only a few
 * packets be traced. The skb is freed by then: its bit cannot be read here. */
static __always_inline bool traced_drop_taken(struct sk_buff *skb)
{
	__u32 zero = 0;
	struct nb_drop_stash *stash = bpf_map_lookup_elem(&drop_stash, &zero);

	if (!stash || stash->skb != (__u64)skb)
		return false;
	stash->skb = 0;
	return true;
}

static __always_inline void traced_drop_seen(struct sk_buff *skb)
{
	__u32 zero = 0;
	struct nb_drop_stash *stash = bpf_map_lookup_elem(&drop_stash, &zero);

	if (stash)
		stash->skb = (__u64)skb;
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
	if (cfg_count_drops)
		count_hook_drop(NB_ORIGIN_FENTRY, skb, nb_state_hook(state), nb_state_pf(state),
				BPF_CORE_READ(e, num_hook_entries), BPF_CORE_READ(state, in),
				BPF_CORE_READ(state, out), net, ret);
	else if (!cfg_traced_only || traced_drop_taken(skb))
		emit_hook_drop(NB_ORIGIN_FENTRY, skb, nb_state_hook(state), nb_state_pf(state),
			       BPF_CORE_READ(e, num_hook_entries), BPF_CORE_READ(state, in),
			       BPF_CORE_READ(state, out), net, ret);
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
		if (cfg_count_drops)
			count_hook_drop(NB_ORIGIN_KPROBE, a->skb, nb_state_hook(state), nb_state_pf(state),
					BPF_CORE_READ(e, num_hook_entries), BPF_CORE_READ(state, in),
					BPF_CORE_READ(state, out), net, ret);
		else if ((!cfg_netns || nb_net_ino(net) == cfg_netns) &&
			 (!cfg_traced_only || traced_drop_taken(a->skb)))
			emit_hook_drop(NB_ORIGIN_KPROBE, a->skb, nb_state_hook(state), nb_state_pf(state),
				       BPF_CORE_READ(e, num_hook_entries), BPF_CORE_READ(state, in),
				       BPF_CORE_READ(state, out), net, ret);
	}
	bpf_map_delete_elem(&hook_args_by_task, &key);
	return 0;
}

/* nfct_raw: skb->_nfct, read by the caller where clash needs it. */
static __always_inline void handle_kfree_skb(__u8 origin, struct sk_buff *skb, void *location, __u32 reason,
					     bool has_reason, unsigned long nfct_raw)
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
	if (cfg_traced_only && bpf_core_field_exists(skb->nf_trace) && !BPF_CORE_READ_BITFIELD_PROBED(skb, nf_trace))
		return;
	if (cfg_traced_only)
		traced_drop_seen(skb);
	if (cfg_clash_only && !clash_candidate(skb, nfct_raw))
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
	if (cfg_count_drops) {
		struct nb_drop_key key = {};
		struct nf_conn *nfct = key_from_skb_btf(skb, &key);

		count_kfree_skb(NB_ORIGIN_TP_BTF, skb, location, reason, true, &key, nfct);
		return 0;
	}
	/* trace: the nf_trace bit as a direct load (a probe read costs
	 * about half of this program's time on a drop flood). */
	if (cfg_traced_only && bpf_core_field_exists(skb->nf_trace) && !BPF_CORE_READ_BITFIELD(skb, nf_trace))
		return 0;
	handle_kfree_skb(NB_ORIGIN_TP_BTF, skb, location, reason, true,
			 cfg_clash_only && bpf_core_field_exists(skb->_nfct) ? skb->_nfct : 0);
	return 0;
}

/* Kernels before 5.17 pass no reason: two arguments only, or attach fails. */
SEC("raw_tp/kfree_skb")
int BPF_PROG(kfree_skb_raw, struct sk_buff *skb, void *location)
{
	if (cfg_count_drops) {
		struct nb_drop_key key = {};
		struct nf_conn *nfct = key_from_skb_probe(skb, &key);

		count_kfree_skb(NB_ORIGIN_RAW_TP, skb, location, 0, false, &key, nfct);
		return 0;
	}
	handle_kfree_skb(NB_ORIGIN_RAW_TP, skb, location, 0, false,
			 cfg_clash_only ? (unsigned long)nb_skb_ct(skb) : 0);
	return 0;
}

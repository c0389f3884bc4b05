/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * Helpers shared by every natbpf BPF object: the ring buffer, the filter
 * configuration (set from user space before load), and readers that turn
 * kernel structures into the records of natbpf_events.h.
 */
#ifndef NATBPF_BPF_H
#define NATBPF_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "natbpf_events.h"
#include "core_fixes.bpf.h"

#define NF_DROP 0
#define NF_ACCEPT 1
#define NFPROTO_IPV4 2
#define NFPROTO_IPV6 10
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define NFCT_PTRMASK_ (~7UL)
#define IPS_CONFIRMED_BIT_ 3
#define IPS_SRC_NAT_DONE_BIT_ 7
#define IPS_DST_NAT_DONE_BIT_ 8

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NB_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} nb_stats SEC(".maps");

/* The skb whose __nf_conntrack_confirm just returned NF_DROP, per CPU:
 * written by the conntrack object, read by kfree_skb in the hooks object
 * (natbpf drops), which fires next on the same CPU. Shared by fd like
 * nb_stats. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nb_confirm_drop SEC(".maps");

/* Filter, written by user space into .rodata before load. 0 means "any". */
const volatile __u8 cfg_l4proto = 0;
const volatile __u16 cfg_sport = 0;
const volatile __u16 cfg_dport = 0;
const volatile __u8 cfg_family = 0;
const volatile __u8 cfg_match_saddr = 0;
const volatile __u8 cfg_match_daddr = 0;
const volatile __u8 cfg_saddr[NB_ADDR_LEN] = {};
const volatile __u8 cfg_daddr[NB_ADDR_LEN] = {};
const volatile __u32 cfg_netns = 0;
/* Report every drop of a matching flow, not only netfilter drops. */
const volatile __u8 cfg_all_reasons = 0;
/* BPF_RB_NO_WAKEUP for high-rate runs (drops, clash): user space then reads
 * on its own tick instead of being woken for every record. */
const volatile __u64 cfg_rb_flags = 0;
/* natbpf trace: only packets nftables (or iptables TRACE) traced, whose
 * skb->nf_trace natbpf's marking rule set, are its; one bit read rejects
 * every other freed skb before its headers are. */
const volatile __u8 cfg_traced_only = 0;
/* natbpf drops: count every drop in the kernel and send examples only. */
const volatile __u8 cfg_count_drops = 0;
/* ... and nf_hook_slow's exit is attached: it counts netfilter drops, so
 * their key carries the hook. */
const volatile __u8 cfg_hook_exit = 0;
/* ... and __nf_conntrack_confirm's exit is attached: it marks the skbs it
 * dropped in nb_confirm_drop. */
const volatile __u8 cfg_confirm_exit = 0;
/* natbpf clash (and drops --clash): only drops that can be a conntrack
 * insert failure are its; kfree_skb rejects every other one in the kernel,
 * before a header is read or a record reserved (hooks.bpf.c). */
const volatile __u8 cfg_clash_only = 0;

/* uapi enum values (include/uapi/linux/bpf.h), absent from the minimal vmlinux.h */
#define NB_RB_NO_WAKEUP 1
#define NB_RB_FORCE_WAKEUP 2
#define NB_RB_AVAIL_DATA 0

static __always_inline void nb_stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&nb_stats, &idx);

	if (v)
		(*v)++;
}

/* With batched wake-ups the reader is still woken once a quarter of the
 * ring waits, so a storm is read before the ring fills and records are lost. */
static __always_inline void nb_submit(void *ev)
{
	__u64 flags = cfg_rb_flags;

	if ((flags & NB_RB_NO_WAKEUP) && bpf_ringbuf_query(&events, NB_RB_AVAIL_DATA) > (1 << 18))
		flags = NB_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(ev, flags);
}

static __always_inline void *nb_reserve(__u32 size, __u16 kind, __u8 origin)
{
	struct nb_hdr *h = bpf_ringbuf_reserve(&events, size, 0);

	if (!h) {
		nb_stat_inc(NB_STAT_RB_LOST);
		return NULL;
	}
	h->kind = kind;
	h->version = NB_EVENT_VERSION;
	h->size = size;
	h->origin = origin;
	h->cpu = bpf_get_smp_processor_id();
	h->ts_ns = bpf_ktime_get_ns();
	return h;
}

static __always_inline __u32 nb_net_ino(struct net *net)
{
	if (!net)
		return 0;
	return BPF_CORE_READ(net, ns.inum);
}

static __always_inline __u32 nb_skb_netns(struct sk_buff *skb)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct sock *sk;

	if (dev)
		return nb_net_ino(BPF_CORE_READ(dev, nd_net.net));
	sk = BPF_CORE_READ(skb, sk);
	if (sk)
		return nb_net_ino(BPF_CORE_READ(sk, __sk_common.skc_net.net));
	return 0;
}

/* Copies IP and L4 headers out of the skb's linear data. */
static __always_inline void nb_read_pkt(struct sk_buff *skb, struct nb_pkt *p)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	unsigned char *l3 = head + nh;
	unsigned char *l4;
	__u8 vihl = 0;
	struct net_device *dev;

	p->len = BPF_CORE_READ(skb, len);
	dev = BPF_CORE_READ(skb, dev);
	p->ifindex = dev ? BPF_CORE_READ(dev, ifindex) : 0;
	p->netns_ino = nb_skb_netns(skb);
	if (bpf_probe_read_kernel(&vihl, 1, l3))
		return;
	if ((vihl >> 4) == 4) {
		struct iphdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), l3))
			return;
		p->family = NFPROTO_IPV4;
		p->l4proto = ip.protocol;
		p->ip_id = bpf_ntohs(ip.id);
		__builtin_memcpy(p->saddr, &ip.saddr, 4);
		__builtin_memcpy(p->daddr, &ip.daddr, 4);
		l4 = l3 + (vihl & 0xf) * 4;
	} else if ((vihl >> 4) == 6) {
		struct ipv6hdr ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), l3))
			return;
		p->family = NFPROTO_IPV6;
		p->l4proto = ip6.nexthdr;
		bpf_probe_read_kernel(p->saddr, 16, &ip6.saddr);
		bpf_probe_read_kernel(p->daddr, 16, &ip6.daddr);
		l4 = l3 + sizeof(ip6);
	} else {
		return;
	}
	if (p->l4proto == IPPROTO_TCP_) {
		struct tcphdr th;

		if (bpf_probe_read_kernel(&th, sizeof(th), l4))
			return;
		p->sport = bpf_ntohs(th.source);
		p->dport = bpf_ntohs(th.dest);
		p->tcp_seq = bpf_ntohl(th.seq);
		/* byte 13 of the TCP header holds CWR..FIN */
		bpf_probe_read_kernel(&p->tcp_flags, 1, l4 + 13);
	} else if (p->l4proto == IPPROTO_UDP_) {
		struct udphdr uh;

		if (bpf_probe_read_kernel(&uh, sizeof(uh), l4))
			return;
		p->sport = bpf_ntohs(uh.source);
		p->dport = bpf_ntohs(uh.dest);
	}
}

static __always_inline void nb_read_tuple(const struct nf_conntrack_tuple *t, struct nb_tuple *o)
{
	bpf_probe_read_kernel(o->src, NB_ADDR_LEN, &t->src.u3);
	bpf_probe_read_kernel(o->dst, NB_ADDR_LEN, &t->dst.u3);
	o->sport = bpf_ntohs(BPF_CORE_READ(t, src.u.all));
	o->dport = bpf_ntohs(BPF_CORE_READ(t, dst.u.all));
	o->l3num = BPF_CORE_READ(t, src.l3num);
	o->protonum = BPF_CORE_READ(t, dst.protonum);
}

static __always_inline void nb_read_ct(struct nf_conn *ct, struct nb_ct *o)
{
	o->ptr = (__u64)ct;
	if (!ct)
		return;
	nb_read_tuple(&ct->tuplehash[0].tuple, &o->orig);
	nb_read_tuple(&ct->tuplehash[1].tuple, &o->reply);
	o->status = BPF_CORE_READ(ct, status);
	if (bpf_core_field_exists(ct->mark))
		o->mark = BPF_CORE_READ(ct, mark);
	o->timeout = BPF_CORE_READ(ct, timeout);
	o->netns_ino = nb_net_ino(BPF_CORE_READ(ct, ct_net.net));
}

/* The conntrack entry attached to an skb, or NULL (skb->_nfct & NFCT_PTRMASK). */
static __always_inline struct nf_conn *nb_skb_ct(struct sk_buff *skb)
{
	unsigned long nfct;

	if (!bpf_core_field_exists(skb->_nfct))
		return NULL;
	nfct = BPF_CORE_READ(skb, _nfct);
	return (struct nf_conn *)(nfct & NFCT_PTRMASK_);
}

static __always_inline bool nb_addr_eq(const __u8 *a, const volatile __u8 *b, __u8 family)
{
	int n = family == NFPROTO_IPV4 ? 4 : 16;

	for (int i = 0; i < 16; i++) {
		if (i < n && a[i] != b[i])
			return false;
	}
	return true;
}

static __always_inline bool nb_match(__u8 family, __u8 l4proto, const __u8 *saddr, const __u8 *daddr,
				     __u16 sport, __u16 dport)
{
	if (cfg_family && family != cfg_family)
		return false;
	if (cfg_l4proto && l4proto != cfg_l4proto)
		return false;
	if (cfg_sport && sport != cfg_sport)
		return false;
	if (cfg_dport && dport != cfg_dport)
		return false;
	if (cfg_match_saddr && !nb_addr_eq(saddr, cfg_saddr, family))
		return false;
	if (cfg_match_daddr && !nb_addr_eq(daddr, cfg_daddr, family))
		return false;
	return true;
}

/* A packet matches if its headers match, or the original direction of its
 * conntrack entry does: after DNAT the headers no longer carry the port the
 * user asked about. */
static __always_inline bool nb_pkt_matches(const struct nb_pkt *p, const struct nb_ct *ct)
{
	__u32 netns = p->netns_ino ? p->netns_ino : ct->netns_ino;

	if (cfg_netns && netns != cfg_netns)
		return false;
	if (nb_match(p->family, p->l4proto, p->saddr, p->daddr, p->sport, p->dport))
		return true;
	if (!ct->ptr)
		return false;
	return nb_match(ct->orig.l3num, ct->orig.protonum, ct->orig.src, ct->orig.dst, ct->orig.sport,
			ct->orig.dport);
}

static __always_inline bool nb_ct_matches(const struct nb_ct *ct)
{
	if (cfg_netns && ct->netns_ino != cfg_netns)
		return false;
	return nb_match(ct->orig.l3num, ct->orig.protonum, ct->orig.src, ct->orig.dst, ct->orig.sport,
			ct->orig.dport);
}

/* Sends ev if its conntrack entry passes the user's filter, else gives its
 * ring-buffer space back: the filter can only run once the entry is read. */
static __always_inline void nb_submit_if_ct_matches(void *ev, const struct nb_ct *ct)
{
	if (!nb_ct_matches(ct)) {
		bpf_ringbuf_discard(ev, 0);
		return;
	}
	nb_submit(ev);
}

#endif /* NATBPF_BPF_H */

// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * nftables trace ids: at __nft_trace_packet (static noinline, attachable),
 * record which skb a trace id (nft_traceinfo.skbid, 5.19+) belongs to.
 * The id is a siphash with a secret key since e34b9ed96ce3 (5.19), so it
 * cannot be recomputed: it has to be read here.
 *   6.4+:  (pkt, verdict, rule, info, type)      "do not store rule in traceinfo"
 *   <=6.3: (info, chain, type), skb at info->pkt->skb
 * The plan picks the variant from the function's first parameter in BTF.
 */
#include "natbpf.bpf.h"

/* The <=6.3 layout of struct nft_traceinfo, which still had pkt. */
struct nft_traceinfo___old {
	const struct nft_pktinfo *pkt;
} __attribute__((preserve_access_index));

/* __nft_trace_packet runs for every rule a traced packet meets: report each
 * (skb, id) pair once per CPU run. */
struct last_id {
	__u64 skb;
	__u32 skbid;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct last_id);
} last_seen SEC(".maps");

static __always_inline void emit_trace_id(__u8 origin, struct sk_buff *skb, struct nft_traceinfo *info)
{
	struct nb_nft_trace_id *ev;
	struct last_id *last;
	__u32 zero = 0, skbid;

	if (!bpf_core_field_exists(info->skbid))
		return; /* before 5.19 the id is computed at notify time */
	/* With the static key on, this runs for untraced packets too. */
	if (!BPF_CORE_READ(info, trace) || !BPF_CORE_READ(info, nf_trace))
		return;
	skbid = BPF_CORE_READ(info, skbid);
	last = bpf_map_lookup_elem(&last_seen, &zero);
	if (!last)
		return;
	if (last->skb == (__u64)skb && last->skbid == skbid)
		return;
	last->skb = (__u64)skb;
	last->skbid = skbid;
	ev = nb_reserve(sizeof(*ev), NB_EV_NFT_TRACE_ID, origin);
	if (!ev)
		return;
	ev->skb = (__u64)skb;
	ev->skbid = skbid;
	ev->pad = 0;
	nb_submit(ev);
}

static __always_inline struct sk_buff *old_skb(struct nft_traceinfo *info)
{
	struct nft_traceinfo___old *o = (void *)info;

	return BPF_CORE_READ(o, pkt, skb);
}

SEC("fentry/__nft_trace_packet")
int BPF_PROG(nft_trace_fentry, const struct nft_pktinfo *pkt, const void *verdict, const void *rule,
	     struct nft_traceinfo *info)
{
	emit_trace_id(NB_ORIGIN_FENTRY, BPF_CORE_READ(pkt, skb), info);
	return 0;
}

SEC("fentry/__nft_trace_packet")
int BPF_PROG(nft_trace_old_fentry, struct nft_traceinfo *info)
{
	emit_trace_id(NB_ORIGIN_FENTRY, old_skb(info), info);
	return 0;
}

SEC("kprobe/__nft_trace_packet")
int BPF_KPROBE(nft_trace_kprobe, const struct nft_pktinfo *pkt, const void *verdict, const void *rule,
	       struct nft_traceinfo *info)
{
	emit_trace_id(NB_ORIGIN_KPROBE, BPF_CORE_READ(pkt, skb), info);
	return 0;
}

SEC("kprobe/__nft_trace_packet")
int BPF_KPROBE(nft_trace_old_kprobe, struct nft_traceinfo *info)
{
	emit_trace_id(NB_ORIGIN_KPROBE, old_skb(info), info);
	return 0;
}

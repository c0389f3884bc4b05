/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * The contract between natbpf's BPF programs and its C++ decoder: every
 * record that crosses the ring buffer is defined here and nowhere else.
 * Fixed-width types and explicit padding only; both sides static_assert
 * the sizes, and the decoder checks hdr.kind, hdr.version and hdr.size
 * before it reads a record.
 */
#ifndef NATBPF_EVENTS_H
#define NATBPF_EVENTS_H

#ifdef __bpf__
/* vmlinux.h provides __u8 ... __u64 for the BPF side. */
#else
#include <linux/types.h>
#endif

#define NB_EVENT_VERSION 1
#define NB_ADDR_LEN 16
#define NB_TABLE_NAME_LEN 32

enum nb_event_kind {
	NB_EV_HOOK_DROP = 1,   /* nf_hook_slow returned < 0 (fexit/kretprobe) */
	NB_EV_SKB_DROP = 2,    /* skb:kfree_skb with a netfilter reason or a traced flow */
	NB_EV_CT_CONFIRM = 3,  /* __nf_conntrack_confirm did not simply insert */
	NB_EV_CT_CLASH = 4,    /* nf_ct_resolve_clash ran: loser, winner, outcome */
	NB_EV_NAT_SETUP = 5,   /* nf_nat_setup_info: range, attempts, chosen tuple */
	NB_EV_NFT_TRACE_ID = 6, /* __nft_trace_packet: which skb an nftrace id belongs to */
	NB_EV_DROP_EXAMPLE = 7, /* natbpf drops: one dropped packet of a counted key */
	NB_EV_DROP_COUNTS = 8,  /* natbpf drops: the in-kernel counts, read by user space */
	NB_EV_CT_INVALID = 9,   /* nf_l4proto_log_invalid: conntrack's reason for an INVALID packet */
};

/* Which attach variant produced a record: evidence shown to the user. */
enum nb_origin {
	NB_ORIGIN_FENTRY = 1,
	NB_ORIGIN_KPROBE = 2,
	NB_ORIGIN_TP_BTF = 3,
	NB_ORIGIN_RAW_TP = 4,
};

struct nb_hdr {
	__u16 kind;
	__u16 version;
	__u16 size;
	__u8 origin;
	__u8 cpu;
	__u64 ts_ns; /* bpf_ktime_get_ns() */
};

/* Packet headers as the hook saw them; ports in host order. */
struct nb_pkt {
	__u8 family; /* NFPROTO_IPV4 (2) or NFPROTO_IPV6 (10), 0 if unknown */
	__u8 l4proto;
	__u8 tcp_flags;
	__u8 pad0;
	__u16 sport;
	__u16 dport;
	__u8 saddr[NB_ADDR_LEN];
	__u8 daddr[NB_ADDR_LEN];
	__u32 tcp_seq;
	__u16 ip_id;
	__u16 pad1;
	__u32 ifindex;   /* skb->dev */
	__u32 netns_ino; /* inode of the device's network namespace */
	__u32 len;
	__u32 pad2;
};

/* One direction of a conntrack tuple; ports in host order. */
struct nb_tuple {
	__u8 src[NB_ADDR_LEN];
	__u8 dst[NB_ADDR_LEN];
	__u16 sport;
	__u16 dport;
	__u16 l3num;
	__u8 protonum;
	__u8 pad;
};

/* A conntrack entry: both tuples and the status bits (enum ip_conntrack_status). */
struct nb_ct {
	__u64 ptr; /* kernel address; only a join key, never dereferenced */
	struct nb_tuple orig;
	struct nb_tuple reply;
	__u64 status;
	__u32 mark;
	__u32 timeout; /* jiffies, as in nf_conn.timeout */
	__u32 netns_ino;
	__u32 pad;
};

/*
 * nf_hook_slow returned < 0: the skb is already freed, so this record holds
 * no packet; the decoder joins it with the NB_EV_SKB_DROP of the same skb
 * pointer (kfree_skb fires inside nf_hook_slow, just before it returns).
 */
struct nb_hook_drop {
	struct nb_hdr hdr;
	__u64 skb;
	__s32 ret; /* nf_hook_slow's return: -errno */
	__u8 hook; /* NF_INET_* */
	__u8 pf;   /* NFPROTO_* */
	__u16 num_hook_entries;
	__u32 in_ifindex;
	__u32 out_ifindex;
	__u32 netns_ino;
	__u32 pad;
};

struct nb_skb_drop {
	struct nb_hdr hdr;
	__u64 skb;
	__u64 location; /* kernel address of the kfree_skb caller */
	__u32 reason;   /* enum skb_drop_reason, numeric value of this kernel */
	__u8 has_reason;
	__u8 has_ct;
	__u16 pad;
	struct nb_pkt pkt;
	struct nb_ct ct;
};

enum nb_confirm_flags {
	NB_CONFIRM_MERGED = 1,    /* skb now points at another (winning) entry */
	NB_CONFIRM_NAT_CLASH = 2, /* loser inserted reply-only (IPS_NAT_CLASH) */
};

struct nb_ct_confirm {
	struct nb_hdr hdr;
	__u64 skb;
	struct nb_pkt pkt;
	struct nb_ct loser;
	struct nb_ct winner; /* valid when flags & NB_CONFIRM_MERGED */
	__u32 ret;           /* NF_ACCEPT (1) or NF_DROP (0) */
	__u32 flags;
};

struct nb_ct_clash {
	struct nb_hdr hdr;
	__u64 skb;
	struct nb_ct loser;
	struct nb_ct winner;
	__u32 ret; /* NF_ACCEPT: resolved, NF_DROP: dropped */
	__u32 pad;
};

struct nb_nat_range {
	__u32 flags; /* NF_NAT_RANGE_* */
	__u16 min_port;
	__u16 max_port;
	__u8 min_addr[NB_ADDR_LEN];
	__u8 max_addr[NB_ADDR_LEN];
};

struct nb_nat_setup {
	struct nb_hdr hdr;
	struct nb_ct ct; /* after setup: reply tuple holds the chosen mapping */
	struct nb_tuple before; /* original tuple at entry */
	struct nb_nat_range range;
	__u32 maniptype; /* NF_NAT_MANIP_SRC (0) or _DST (1) */
	__u32 ret;
	__u32 attempts; /* nf_conntrack_tuple_taken calls for this ct */
	__u32 taken;    /* of which returned "taken" */
	struct nb_tuple last_probe;
};

/*
 * The nftables trace id of a traced packet pass (nft_traceinfo.skbid, 5.19+)
 * and its skb: lets user space join BPF records (keyed by skb) to the
 * nftrace messages (keyed by id) exactly instead of by headers and time.
 */
struct nb_nft_trace_id {
	struct nb_hdr hdr;
	__u64 skb;
	__u32 skbid; /* as in the kernel; nftrace prints ntohl() of its bytes */
	__u32 pad;
};

/*
 * Conntrack called a packet INVALID and gave its reason to
 * nf_l4proto_log_invalid (which logs it only when nf_conntrack_log_invalid
 * covers the protocol; the kprobe reads it either way).
 */
#define NB_INVALID_REASON_LEN 96

struct nb_ct_invalid {
	struct nb_hdr hdr;
	__u64 skb;
	struct nb_pkt pkt;
	__u8 protonum;
	__u8 pad[7];
	char reason[NB_INVALID_REASON_LEN]; /* NUL-terminated: the message, or its format when not expanded */
};

/*
 * natbpf drops counts every drop in the kernel, in a per-CPU hash keyed by
 * this; only an example packet per key and second crosses the ring buffer.
 */
#define NB_HOOK_UNKNOWN 0xff

enum nb_drop_flags {
	NB_DROP_HAS_REASON = 1,     /* tp_btf: reason is the kernel's drop reason */
	NB_DROP_HAS_CT = 2,         /* the packet carried a conntrack entry */
	NB_DROP_CT_CONFIRMED = 4,   /* ... already in the table */
	NB_DROP_CT_NAT = 8,         /* ... with IPS_SRC_NAT_DONE or IPS_DST_NAT_DONE */
	NB_DROP_CONFIRM_FAILED = 16, /* __nf_conntrack_confirm returned NF_DROP for it */
};

struct nb_drop_key {
	__u64 location;  /* kernel address of the kfree_skb caller */
	__u32 netns_ino;
	__u32 reason;    /* enum skb_drop_reason of this kernel, 0 without reasons */
	__u16 dport;     /* host order; 0 for other protocols */
	__u8 family;     /* NFPROTO_IPV4/IPV6, 0 not IP */
	__u8 l4proto;
	__u8 hook;       /* NF_INET_* from nf_hook_slow's exit, NB_HOOK_UNKNOWN */
	__u8 flags;      /* enum nb_drop_flags */
	__u16 pad;
};

/* Value of the per-CPU count map: drops of the key on that CPU, and when
 * that CPU last sent an example of it. */
struct nb_drop_value {
	__u64 count;
	__u64 last_example_ns;
};

/* The key is the one counted when the record was sent (hook still unknown
 * where nf_hook_slow's exit follows: its NB_EV_HOOK_DROP of the same skb
 * comes after). */
struct nb_drop_example {
	struct nb_hdr hdr;
	struct nb_drop_key key;
	__u64 skb;
	__u8 has_ct;
	__u8 pad[7];
	struct nb_pkt pkt;
	struct nb_ct ct;
};

/*
 * A netfilter drop seen by kfree_skb, waiting for nf_hook_slow's exit on
 * this CPU to add the hook before it is counted (per-CPU "drop_stash"). A
 * drop still waiting when the next one comes is counted without its hook,
 * and user space counts what is left here when it reads the counts: never
 * lost, never counted twice.
 */
struct nb_drop_stash {
	__u64 skb; /* 0: empty */
	struct nb_drop_key key;
	__u8 example_sent;
	__u8 pad[7];
};

/*
 * natbpf clash's filter in kfree_skb (clash_filter.bpf.h), the "ct_seen"
 * per-CPU map: conntrack's counters each CPU saw last, and the drops it
 * rejected, which user space sums over CPUs.
 */
struct nb_ct_seen {
	__u64 net;      /* the struct net the counters are of */
	__u64 cpu_off;  /* this CPU's per-CPU offset, once cpu_off_known */
	__u64 rejected; /* netfilter drops of unconfirmed entries no counter explains */
	__u32 insert_failed;
	__u32 drop;
	__u32 cpu_off_known;
	__u32 pad;
};

/* Built by user space, never by BPF: a snapshot of the count map (counts
 * since load, summed over CPUs), so that recordings hold the counts too.
 * A snapshot may span several records of one seq; the last has last = 1. */
struct nb_drop_count_row {
	struct nb_drop_key key;
	__u64 count;
};

struct nb_drop_counts {
	struct nb_hdr hdr;
	__u32 seq;
	__u16 rows;
	__u8 last;
	__u8 pad;
	__u64 unkeyed;        /* drops counted while the map was full (no key) */
	__u64 examples_lost;  /* examples the ring buffer had no room for */
	/* followed by rows * struct nb_drop_count_row */
};

#define NB_DROP_COUNTS_MAX_ROWS 1024
#define NB_DROP_KEYS_MAX 16384

/* Per-CPU counters of the BPF side; index into the "nb_stats" map. */
enum nb_stat {
	NB_STAT_RB_LOST = 0, /* ring buffer reservation failed */
	NB_STAT_SCRATCH_MISS = 1,
	NB_STAT_DROP_UNKEYED = 2,  /* drops counted without a key: count map full */
	NB_STAT_EXAMPLE_LOST = 3,  /* drop examples the ring buffer had no room for */
	NB_STAT_MAX = 4,
};

#define NB_ASSERT_SIZE(type, size) _Static_assert(sizeof(type) == (size), #type " size changed: bump NB_EVENT_VERSION")
#ifndef __cplusplus
NB_ASSERT_SIZE(struct nb_hdr, 16);
NB_ASSERT_SIZE(struct nb_pkt, 64);
NB_ASSERT_SIZE(struct nb_tuple, 40);
NB_ASSERT_SIZE(struct nb_ct, 112);
NB_ASSERT_SIZE(struct nb_hook_drop, 48);
NB_ASSERT_SIZE(struct nb_skb_drop, 216);
NB_ASSERT_SIZE(struct nb_ct_confirm, 320);
NB_ASSERT_SIZE(struct nb_ct_clash, 256);
NB_ASSERT_SIZE(struct nb_nat_setup, 264);
NB_ASSERT_SIZE(struct nb_nft_trace_id, 32);
NB_ASSERT_SIZE(struct nb_drop_key, 24);
NB_ASSERT_SIZE(struct nb_drop_example, 232);
NB_ASSERT_SIZE(struct nb_drop_count_row, 32);
NB_ASSERT_SIZE(struct nb_drop_stash, 40);
NB_ASSERT_SIZE(struct nb_ct_seen, 40);
NB_ASSERT_SIZE(struct nb_drop_counts, 40);
NB_ASSERT_SIZE(struct nb_ct_invalid, 192);
#endif

#endif /* NATBPF_EVENTS_H */

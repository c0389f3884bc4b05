// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Empty programs used by `natbpf probe` and the attach plan to ask the
 * running kernel, by loading and attaching, whether an attach type works
 * for a given function. The target is set at run time
 * (bpf_program__set_attach_target / attach_kprobe).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("fentry")
int probe_fentry(void *ctx)
{
	return 0;
}

SEC("fexit")
int probe_fexit(void *ctx)
{
	return 0;
}

SEC("kprobe")
int probe_kprobe(void *ctx)
{
	return 0;
}

SEC("tp_btf")
int probe_tp_btf(void *ctx)
{
	return 0;
}

SEC("raw_tp")
int probe_raw_tp(void *ctx)
{
	return 0;
}

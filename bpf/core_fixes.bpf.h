/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * Kernel layout drift, in one place. Each helper names the change it covers;
 * none of them checks a kernel version: CO-RE decides at load time.
 */
#ifndef NATBPF_CORE_FIXES_H
#define NATBPF_CORE_FIXES_H

/*
 * nf_hook_state.hook shrank from unsigned int to u8 (with pf next to it) in
 * "netfilter: core: pack nf_hook_state" (~5.14); a 4-byte read on newer
 * kernels would pick up pf in the high bytes.
 */
static __always_inline __u8 nb_state_hook(const struct nf_hook_state *state)
{
	if (bpf_core_field_size(state->hook) == 1) {
		__u8 v = 0;

		bpf_core_read(&v, 1, &state->hook);
		return v;
	}
	__u32 v = 0;

	bpf_core_read(&v, 4, &state->hook);
	return v;
}

static __always_inline __u8 nb_state_pf(const struct nf_hook_state *state)
{
	__u8 v = 0;

	bpf_core_read(&v, 1, &state->pf);
	return v;
}

#endif /* NATBPF_CORE_FIXES_H */

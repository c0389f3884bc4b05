#pragma once

#include <cstdint>
#include <map>
#include <string>

struct btf;  // libbpf's

namespace natbpf {

// enum skb_drop_reason of the running kernel, value -> "NETFILTER_DROP".
// Values move between kernels (NETFILTER_DROP: 6 in 5.18, 12 in 6.18), so
// they always come from BTF.
// The running kernel's table is parsed once per process: remember_drop_reasons
// hands over what a caller already read from the parsed BTF (the attach
// plan's), which spares a second parse of vmlinux BTF (about 10 MB of
// natbpf's peak memory).
std::map<uint32_t, std::string> load_drop_reasons(const std::string& btf_path = "/sys/kernel/btf/vmlinux");
std::map<uint32_t, std::string> drop_reasons_from(const ::btf* vmlinux);
void remember_drop_reasons(std::map<uint32_t, std::string> names);
// The name of a reason in such a table, or "reason N" when it is not there.
std::string drop_reason_name(const std::map<uint32_t, std::string>& names, uint32_t reason);

}  // namespace natbpf

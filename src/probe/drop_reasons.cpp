#include "probe/drop_reasons.h"

#include <bpf/btf.h>

#include <optional>

#include "util/libbpf_quiet.h"

namespace natbpf {

namespace {
constexpr const char* kRunningKernelBtf = "/sys/kernel/btf/vmlinux";
std::optional<std::map<uint32_t, std::string>>& remembered() {
  static std::optional<std::map<uint32_t, std::string>> names;
  return names;
}
}  // namespace

std::map<uint32_t, std::string> drop_reasons_from(const btf* b) {
  std::map<uint32_t, std::string> out;
  int id = b ? btf__find_by_name_kind(b, "skb_drop_reason", BTF_KIND_ENUM) : -1;
  if (id <= 0) return out;
  const btf_type* t = btf__type_by_id(b, id);
  const struct btf_enum* e = btf_enum(t);
  const std::string prefix = "SKB_DROP_REASON_";
  for (int i = 0; i < btf_vlen(t); i++) {
    std::string name = btf__name_by_offset(b, e[i].name_off);
    if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
    out[static_cast<uint32_t>(e[i].val)] = name;
  }
  return out;
}

void remember_drop_reasons(std::map<uint32_t, std::string> names) {
  if (!names.empty()) remembered() = std::move(names);
}

std::map<uint32_t, std::string> load_drop_reasons(const std::string& btf_path) {
  if (btf_path == kRunningKernelBtf && remembered()) return *remembered();
  LibbpfQuiet quiet;
  btf* b = btf__parse(btf_path.c_str(), nullptr);
  auto out = drop_reasons_from(b);
  btf__free(b);
  if (btf_path == kRunningKernelBtf) remember_drop_reasons(out);
  return out;
}

std::string drop_reason_name(const std::map<uint32_t, std::string>& names, uint32_t reason) {
  auto it = names.find(reason);
  return it == names.end() ? "reason " + std::to_string(reason) : it->second;
}

}  // namespace natbpf

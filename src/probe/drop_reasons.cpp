#include "probe/drop_reasons.h"

#include <bpf/btf.h>

#include "util/libbpf_quiet.h"

namespace natbpf {

std::map<uint32_t, std::string> load_drop_reasons(const std::string& btf_path) {
  std::map<uint32_t, std::string> out;
  LibbpfQuiet quiet;
  btf* b = btf__parse(btf_path.c_str(), nullptr);
  if (!b) return out;
  int id = btf__find_by_name_kind(b, "skb_drop_reason", BTF_KIND_ENUM);
  if (id > 0) {
    const btf_type* t = btf__type_by_id(b, id);
    const struct btf_enum* e = btf_enum(t);
    for (int i = 0; i < btf_vlen(t); i++) {
      std::string name = btf__name_by_offset(b, e[i].name_off);
      const std::string prefix = "SKB_DROP_REASON_";
      if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
      out[static_cast<uint32_t>(e[i].val)] = name;
    }
  }
  btf__free(b);
  return out;
}

std::string drop_reason_name(const std::map<uint32_t, std::string>& names, uint32_t reason) {
  auto it = names.find(reason);
  return it == names.end() ? "reason " + std::to_string(reason) : it->second;
}

}  // namespace natbpf

// Kernel addresses -> "function+0xoff", for kfree_skb locations.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace natbpf {

// Calls fn with each line of /proc/kallsyms (read in large chunks: the
// kernel formats the file as it is read, which is most of its cost).
void for_each_kallsyms_line(const std::string& path, const std::function<void(std::string_view)>& fn);

class Kallsyms {
 public:
  explicit Kallsyms(const std::string& path = "/proc/kallsyms");
  // "nf_hook_slow+0x7d", or "0xffff..." when unknown (e.g. addresses hidden).
  std::string resolve(uint64_t addr) const;
  // The bare function name, or "" when unknown.
  std::string function(uint64_t addr) const;

 private:
  struct Sym {
    uint64_t addr;
    uint32_t off, len;  // the name in names_
  };
  const Sym* find(uint64_t addr) const;
  std::vector<Sym> syms_;  // text symbols, sorted by address
  std::string names_;
};

}  // namespace natbpf

// Kernel addresses -> "function+0xoff", for kfree_skb locations.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace natbpf {

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
    std::string name;
  };
  std::vector<Sym> syms_;  // text symbols, sorted by address
};

}  // namespace natbpf

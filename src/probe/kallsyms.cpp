#include "probe/kallsyms.h"

#include "util/text.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace natbpf {

Kallsyms::Kallsyms(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string addr, type, name;
    if (!(ls >> addr >> type >> name)) continue;
    if (type != "t" && type != "T") continue;
    uint64_t a = std::stoull(addr, nullptr, 16);
    if (a == 0) continue;  // hidden without CAP_SYSLOG
    syms_.push_back({a, name});
  }
  std::sort(syms_.begin(), syms_.end(), [](const Sym& a, const Sym& b) { return a.addr < b.addr; });
}

std::string Kallsyms::function(uint64_t addr) const {
  auto it = std::upper_bound(syms_.begin(), syms_.end(), addr, [](uint64_t a, const Sym& s) { return a < s.addr; });
  if (it == syms_.begin()) return "";
  return std::prev(it)->name;
}

std::string Kallsyms::resolve(uint64_t addr) const {
  auto it = std::upper_bound(syms_.begin(), syms_.end(), addr, [](uint64_t a, const Sym& s) { return a < s.addr; });
  if (it == syms_.begin()) return hex_address(addr);
  --it;
  char buf[64];
  snprintf(buf, sizeof(buf), "+0x%llx", (unsigned long long)(addr - it->addr));
  return it->name + buf;
}

}  // namespace natbpf

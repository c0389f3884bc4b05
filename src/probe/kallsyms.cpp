#include "probe/kallsyms.h"

#include "util/text.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>

namespace natbpf {

void for_each_kallsyms_line(const std::string& path, const std::function<void(std::string_view)>& fn) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  std::string buf;
  std::vector<char> chunk(1 << 20);
  for (;;) {
    ssize_t n = read(fd, chunk.data(), chunk.size());
    if (n <= 0) break;
    buf.append(chunk.data(), static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1)
      fn(std::string_view(buf).substr(start, nl - start));
    buf.erase(0, start);
  }
  close(fd);
}

Kallsyms::Kallsyms(const std::string& path) {
  // "ffffffff81000000 T name [module]": text symbols only, into one arena
  // (a string per symbol made this the biggest part of natbpf's memory).
  for_each_kallsyms_line(path, [&](std::string_view line) {
    size_t a = line.find(' ');
    if (a == std::string_view::npos || a + 3 > line.size() || line[a + 2] != ' ') return;
    char type = line[a + 1];
    if (type != 't' && type != 'T') return;
    uint64_t addr = std::strtoull(std::string(line.substr(0, a)).c_str(), nullptr, 16);
    if (addr == 0) return;  // hidden without CAP_SYSLOG
    std::string_view name = line.substr(a + 3);
    name = name.substr(0, name.find_first_of(" \t"));
    // The padding before each function (6.2+ call depth tracking, CFI):
    // half of a 6.x kernel's text symbols, and no return address is in one.
    if (name.starts_with("__pfx_") || name.starts_with("__cfi_")) return;
    syms_.push_back({addr, static_cast<uint32_t>(names_.size()), static_cast<uint32_t>(name.size())});
    names_.append(name);
  });
  std::sort(syms_.begin(), syms_.end(), [](const Sym& x, const Sym& y) { return x.addr < y.addr; });
  syms_.shrink_to_fit();
  names_.shrink_to_fit();
}

const Kallsyms::Sym* Kallsyms::find(uint64_t addr) const {
  auto it = std::upper_bound(syms_.begin(), syms_.end(), addr, [](uint64_t a, const Sym& s) { return a < s.addr; });
  return it == syms_.begin() ? nullptr : &*std::prev(it);
}

std::string Kallsyms::function(uint64_t addr) const {
  const Sym* s = find(addr);
  return s ? names_.substr(s->off, s->len) : "";
}

std::string Kallsyms::resolve(uint64_t addr) const {
  const Sym* s = find(addr);
  if (!s) return hex_address(addr);
  char buf[64];
  snprintf(buf, sizeof(buf), "+0x%llx", (unsigned long long)(addr - s->addr));
  return names_.substr(s->off, s->len) + buf;
}

}  // namespace natbpf

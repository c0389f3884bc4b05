// Small text helpers shared by the ruleset and iptables parsers.
#pragma once

#include <sstream>
#include <string>
#include <vector>

namespace natbpf {

// Whitespace-separated words.
inline std::vector<std::string> split_words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

inline std::string trim(const std::string& s) {
  auto a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  auto b = s.find_last_not_of(" \t");
  return s.substr(a, b - a + 1);
}

}  // namespace natbpf

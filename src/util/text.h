// Small text helpers shared by the ruleset and iptables parsers.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace natbpf {

// Whitespace-separated words (the C locale's spaces, as `istream >> string`
// splits them), scanned by hand: it runs for every rule of every story.
inline std::vector<std::string> split_words(const std::string& s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; };
  std::vector<std::string> out;
  for (size_t i = 0, n = s.size();;) {
    while (i < n && space(s[i])) i++;
    if (i == n) break;
    size_t start = i;
    while (i < n && !space(s[i])) i++;
    out.emplace_back(s, start, i - start);
  }
  return out;
}

// n in decimal, appended without a temporary string (stories are built for
// every packet of a saved log).
inline void append_number(std::string& out, uint64_t n) {
  char buf[24];
  auto end = std::to_chars(buf, buf + sizeof(buf), n).ptr;
  out.append(buf, end);
}

// "text" with its double quotes, as rules and names are shown in stories.
inline std::string quote(const std::string& s) { return "\"" + s + "\""; }

// Rule texts longer than this are not searched with std::regex, which
// recurses once per character (a damaged recording or a hostile ruleset).
inline constexpr size_t kMaxRegexRuleText = 4096;
inline bool too_long_for_regex(const std::string& text) { return text.size() > kMaxRegexRuleText; }

inline std::string trim(const std::string& s) {
  auto a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  auto b = s.find_last_not_of(" \t");
  return s.substr(a, b - a + 1);
}

// "0xffffffff81000000": a kernel address no symbol names.
inline std::string hex_address(uint64_t addr) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(addr));
  return buf;
}

// A whole decimal number in [0, max]: no sign, no spaces, no overflow.
inline std::optional<uint64_t> parse_uint(std::string_view s, uint64_t max = UINT64_MAX) {
  uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || v > max) return std::nullopt;
  return v;
}

// The pid in a name natbpf gives what it creates ("natbpf_<pid>": its nft
// table, its raw rules' comment), or nullopt when name is not exactly that
// (a user's "mynatbpf_5" or "natbpf_5x" is never natbpf's).
inline std::optional<int> natbpf_owner_pid(std::string_view name) {
  constexpr std::string_view prefix = "natbpf_";
  if (name.substr(0, prefix.size()) != prefix) return std::nullopt;
  auto pid = parse_uint(name.substr(prefix.size()), 4194304);  // PID_MAX_LIMIT
  if (!pid || *pid == 0) return std::nullopt;
  return static_cast<int>(*pid);
}

}  // namespace natbpf

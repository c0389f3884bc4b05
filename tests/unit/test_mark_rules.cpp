// matched_mark and sets_mark scan iptables rules by hand (they run for every
// story of a saved log); they must give what their regular expressions gave,
// kept here as the oracle, on real rules and on many generated ones.
#include <gtest/gtest.h>

#include <charconv>
#include <random>
#include <regex>

#include "explain/drop_rules.h"

using namespace natbpf;

namespace {

std::optional<std::string> matched_mark_regex(const std::string& rule) {
  static const std::regex mark(R"((?:^| )-m (mark|connmark) --mark (\S+))");
  std::smatch m;
  if (rule.size() > 4096 || !std::regex_search(rule, m, mark)) return std::nullopt;
  return (m[1] == "connmark" ? "ct " : "") + m[2].str();
}

// sets_mark as it was, with its regex (writes_bits as in explain/drop_rules.cpp).
bool sets_mark_regex(const std::string& rule, const std::string& mark) {
  static const std::regex set(R"( -j (MARK|CONNMARK) --(set-xmark|set-mark|or-mark) (\S+))");
  std::smatch m;
  if (rule.size() > 4096 || !std::regex_search(rule, m, set)) return false;
  bool ct = mark.rfind("ct ", 0) == 0;
  if (ct != (m[1] == "CONNMARK")) return false;
  auto want = parse_mark(ct ? mark.substr(3) : mark);
  auto given = parse_mark(m[3].str());
  if (!want || !given) return false;
  if (m[2] == "or-mark") given->second = given->first;
  return (given->second & want->second) == want->second && (given->first & want->second) == (want->first & want->second);
}

// Rules of the phrases and words that matter here, near misses, and spaces
// of every kind between them.
std::vector<std::string> generated_rules() {
  const std::vector<std::string> parts = {
      "-m mark --mark",   "-m connmark --mark", "-j MARK --set-xmark", "-j CONNMARK --or-mark", "-j MARK --set-mark",
      "-j MARK --or-mark", "-m", "mark", "--mark", "-j", "MARK", "CONNMARK", "--set-xmark", "-A X", "0x8000",
      "0x8000/0x8000", "0x1/0x1", "0x1", "0x4000/0x4000", "-mmark", "--markx", "x-m", "-j DROP", "\t0x8000", ""};
  const std::vector<std::string> gaps = {" ", " ", " ", " ", "  ", "\t", ""};
  std::mt19937 rng(7);
  std::vector<std::string> rules;
  for (int i = 0; i < 20000; i++) {
    std::string r;
    int n = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < n; k++) r += parts[rng() % parts.size()] + gaps[rng() % gaps.size()];
    rules.push_back(r);
  }
  return rules;
}

}  // namespace

TEST(MarkRules, HandScanGivesWhatTheRegexGave) {
  std::vector<std::string> rules = generated_rules();
  for (const char* real : {"-A KUBE-FIREWALL -m comment --comment \"x\" -m mark --mark 0x8000/0x8000 -j DROP",
                           "-m mark --mark 0x1", " -m connmark --mark 0x2/0x2 -j ACCEPT", "-m mark --mark  0x1",
                           "-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000", "-A X -j CONNMARK --or-mark 0x1",
                           "-A X -j MARK --set-mark", "-A X -j MARK --set-mark 0x1 -j MARK --set-xmark 0x8000/0x8000",
                           "-A X -j MARK --set-mark  -j MARK --or-mark 0x8000"})
    rules.push_back(real);
  size_t marks = 0, sets = 0;
  for (const auto& r : rules) {
    auto want = matched_mark_regex(r);
    EXPECT_EQ(matched_mark(r), want) << r;
    marks += want.has_value();
    for (const char* mark : {"0x8000/0x8000", "0x8000", "0x1/0x1", "0x1", "ct 0x1", "ct 0x8000/0x8000", "0x4000/0x4000"}) {
      bool set = sets_mark_regex(r, mark);
      EXPECT_EQ(sets_mark(r, mark), set) << r << " | " << mark;
      sets += set;
    }
  }
  EXPECT_GT(marks, 100u);  // the generated rules do reach both kinds of matches
  EXPECT_GT(sets, 100u);
}

// natbpf drops: a bounded run that ranks every netfilter drop on the host by
// its cause, across network namespaces.
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iomanip>
#include <iostream>
#include <regex>
#include <sstream>

#include "cli/commands.h"
#include "explain/drops.h"
#include "output/drops_render.h"
#include "probe/drop_reasons.h"
#include "probe/kallsyms.h"
#include "sources/bpf.h"
#include "kernel/ct_stats.h"
#include "sources/nft.h"
#include "sources/ruleset.h"
#include "util/runtime.h"

namespace natbpf {
namespace {

struct DropsOptions {
  std::string duration = "10s", ready_file;
  bool json = false;
  size_t top = 10;
  PlanRequest request;
};

struct NamedNetns {
  std::string name, path;
  uint32_t inode = 0;
};

// Named namespaces (ip netns) and natbpf's own, by inode.
std::vector<NamedNetns> list_netns() {
  std::vector<NamedNetns> out{{"(natbpf's namespace)", "/proc/self/ns/net", current_netns_inode()}};
  if (DIR* d = opendir("/run/netns")) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      struct stat st {};
      std::string path = "/run/netns/" + n;
      if (stat(path.c_str(), &st) == 0) out.push_back({n, path, static_cast<uint32_t>(st.st_ino)});
    }
    closedir(d);
  }
  return out;
}

struct NetnsSnapshot {
  std::map<std::string, std::pair<std::string, uint64_t>> drop_rules;  // "inet filter input 2" -> (text, packets)
  std::optional<CtStatsTotals> ct;
};

// Drop rules with counters, and conntrack counters, of one namespace.
NetnsSnapshot snapshot(const NamedNetns& ns) {
  NetnsSnapshot s;
  int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int fd = open(ns.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (self < 0 || fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
    if (fd >= 0) close(fd);
    if (self >= 0) close(self);
    return s;
  }
  if (auto nft = NftContext::create(false)) {
    if (auto text = nft->run("list ruleset")) {
      static const std::regex counter(R"(counter packets ([0-9]+) bytes [0-9]+)");
      Ruleset rs = Ruleset::parse(*text);
      for (const auto& c : rs.chains()) {
        for (const auto& r : c.rules) {
          std::smatch m;
          if (r.text.size() < 4 || r.text.compare(r.text.size() - 4, 4, "drop") != 0) continue;
          if (!std::regex_search(r.text, m, counter)) continue;
          std::string key = c.family + " " + c.table + " " + c.name + " " + std::to_string(r.handle);
          s.drop_rules[key] = {std::regex_replace(r.text, counter, "counter"), std::stoull(m[1])};
        }
      }
    }
  }
  if (auto st = read_ct_stats()) s.ct = CtStatsTotals::sum(*st);
  setns(self, CLONE_NEWNET);
  close(fd);
  close(self);
  return s;
}

Status run_drops(const DropsOptions& o) {
  auto duration = parse_duration(o.duration);
  if (!duration) return duration.error();
  if (o.top == 0) return usage_error("--top must be at least 1", "e.g. --top 10");
  if (auto st = check_privileges_and_btf(); !st) return st;
  auto signals = StopSignals::install();
  if (!signals) return signals.error();
  KernelFeatures features;
  PlanRequest req = o.request;
  apply_attach_env(req);
  req.hooks = {"kfree_skb", "nf_hook_slow", "__nf_conntrack_confirm"};
  auto plan = make_plan(features, req);
  if (!plan) return plan.error();
  if (!plan->has("kfree_skb"))
    return Error{"cannot see drops: skb:kfree_skb does not attach here", "run `natbpf probe` for the reason"};
  Kallsyms kallsyms;
  auto reasons = load_drop_reasons();
  DropAggregator agg([&](uint64_t a) { return kallsyms.resolve(a); },
                     [&](uint32_t r) { return reasons.count(r) ? reasons[r] : std::to_string(r); });
  BpfFilter all;
  all.batch_wakeups = true;  // a drop storm must not wake us per packet; read every tick
  Sources sources;
  auto to_agg = [&agg](BpfEvent&& ev) { agg.add(ev); };
  if (auto st = sources.add(std::make_unique<BpfSource>(*plan, all, to_agg), true); !st) return st;
  // Counters from the moment the drops are watched.
  auto namespaces = list_netns();
  std::vector<NetnsSnapshot> before;
  for (const auto& ns : namespaces) before.push_back(snapshot(ns));
  if (!o.json)
    std::cerr << "natbpf: counting netfilter drops for " << o.duration << "; " << plan->summary() << "\n";
  if (auto st = write_ready_file(o.ready_file); !st) return st;
  uint64_t start = monotonic_ns();
  auto watches = sources.watches();
  LoopLimits limits;
  limits.duration = *duration;
  limits.on_tick = [&] { (void)sources.read_all(); };
  auto stopped = run_loop(watches, *signals, limits);
  (void)sources.read_all();
  agg.finish();
  double secs = double(monotonic_ns() - start) / 1e9;

  auto causes = agg.ranked();
  std::map<uint32_t, size_t> ns_index;
  for (size_t i = 0; i < namespaces.size(); i++) ns_index[namespaces[i].inode] = i;
  std::vector<NetnsSnapshot> after;
  for (const auto& ns : namespaces) after.push_back(snapshot(ns));
  for (auto& c : causes) {
    auto it = ns_index.find(c.netns);
    c.netns_name = it == ns_index.end() ? "netns:" + std::to_string(c.netns) : namespaces[it->second].name;
    bool nft_location = c.where.rfind("nft_do_chain", 0) == 0;
    bool hook_location = c.where.rfind("nf_hook_slow", 0) == 0;
    if (it == ns_index.end() || (!nft_location && !hook_location)) continue;
    uint64_t counted = 0;
    for (const auto& [key, rule] : after[it->second].drop_rules) {
      auto b = before[it->second].drop_rules.find(key);
      uint64_t delta = rule.second - (b == before[it->second].drop_rules.end() ? 0 : b->second.second);
      counted += delta;
      if (delta) c.rules.push_back({key.substr(0, key.rfind(' ')) + ": rule \"" + rule.first + "\" (handle " +
                                        key.substr(key.rfind(' ') + 1) + ")",
                                    delta});
    }
    if (!c.rules.empty()) c.evidence.push_back("nftables rule counters");
    // Before 6.7 (e0d4593140b0) nftables drops are freed by nf_hook_slow too:
    // the rule counters tell them from iptables-legacy and conntrack drops.
    if (hook_location && counted >= c.count && c.cause.rfind("iptables-legacy", 0) == 0)
      c.cause = "nftables rule or chain policy drop";
    else if (hook_location && counted > 0)
      c.cause += " (" + std::to_string(counted) + " of them counted by nftables drop rules)";
  }
  uint64_t lost = sources.lost();

  DropsReport report{secs, agg.total(), lost, plan->summary(), std::move(causes), {}};
  for (size_t i = 0; i < namespaces.size(); i++) {
    if (before[i].ct && after[i].ct) report.conntrack.push_back({namespaces[i].name, after[i].ct->delta_since(*before[i].ct)});
  }
  std::cout << (o.json ? drops_to_json_lines(report, o.top) : drops_to_text(report, o.top)) << std::flush;
  if (!o.ready_file.empty()) unlink(o.ready_file.c_str());
  if (!stopped) return stopped.error();
  return Ok{};
}

}  // namespace

void register_drops_command(CLI::App& app, CommandContext& ctx) {
  static DropsOptions o;
  auto* cmd = app.add_subcommand("drops", "bounded run: rank every netfilter drop on the host by its cause");
  cmd->add_option("--duration", o.duration, "how long to count (default 10s)");
  cmd->add_option("--top", o.top, "show this many causes (default 10)");
  cmd->add_flag("--json", o.json, "JSON Lines: one object per cause, then a summary");
  cmd->add_option("--ready-file", o.ready_file, "create this file once counting has started");
  add_attach_flags(cmd, o.request);
  cmd->callback([&ctx]() { ctx.status = run_drops(o); });
}

}  // namespace natbpf

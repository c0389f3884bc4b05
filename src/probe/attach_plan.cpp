#include "probe/attach_plan.h"

#include <algorithm>

namespace natbpf {
namespace {

using K = AttachKind;

Variant fentry_pair(const std::string& fn, BpfObject obj, std::vector<std::string> progs, bool entry = true) {
  Variant v{"fentry/fexit", {{K::Fexit, fn}}, false, obj, std::move(progs)};
  if (entry) v.needs.insert(v.needs.begin(), {K::Fentry, fn});
  else v.label = "fexit";
  return v;
}

Variant kprobe_pair(const std::string& fn, BpfObject obj, std::vector<std::string> progs) {
  return Variant{"kprobe/kretprobe", {{K::Kprobe, fn}, {K::Kretprobe, fn}}, false, obj, std::move(progs)};
}

bool is_fentry(AttachKind k) { return k == K::Fentry || k == K::Fexit; }
bool is_kprobe(AttachKind k) { return k == K::Kprobe || k == K::Kretprobe; }

}  // namespace

const std::vector<HookSpec>& hook_specs() {
  static const std::vector<HookSpec> specs = {
      {"kfree_skb",
       "drops with their reason and location",
       {Variant{"tp_btf", {{K::TpBtf, "kfree_skb"}}, true, BpfObject::Hooks, {"kfree_skb_btf"}},
        Variant{"raw_tp", {{K::RawTp, "kfree_skb"}}, false, BpfObject::Hooks, {"kfree_skb_raw"}}},
       "nftables trace only"},
      {"nf_hook_slow",
       "hook verdicts (which hook dropped)",
       {fentry_pair("nf_hook_slow", BpfObject::Hooks, {"hook_slow_fexit"}, false),
        kprobe_pair("nf_hook_slow", BpfObject::Hooks, {"hook_slow_kprobe", "hook_slow_kretprobe"})},
       "kfree_skb drop location"},
      {"__nf_conntrack_confirm",
       "conntrack insert failures",
       {fentry_pair("__nf_conntrack_confirm", BpfObject::Conntrack, {"confirm_fentry", "confirm_fexit"}),
        kprobe_pair("__nf_conntrack_confirm", BpfObject::Conntrack, {"confirm_kprobe", "confirm_kretprobe"})},
       "kfree_skb + conntrack stats"},
      {"nf_ct_resolve_clash",
       "clash winner and outcome",
       {fentry_pair("nf_ct_resolve_clash", BpfObject::Conntrack, {"clash_fentry", "clash_fexit"}),
        kprobe_pair("nf_ct_resolve_clash", BpfObject::Conntrack, {"clash_kprobe", "clash_kretprobe"})},
       "kfree_skb + conntrack stats"},
      {"nf_nat_setup_info",
       "NAT range and chosen tuple",
       {fentry_pair("nf_nat_setup_info", BpfObject::Nat, {"nat_setup_fentry", "nat_setup_fexit"}),
        kprobe_pair("nf_nat_setup_info", BpfObject::Nat, {"nat_setup_kprobe", "nat_setup_kretprobe"})},
       "NAT range from the ruleset"},
      {"nf_conntrack_tuple_taken",
       "SNAT port search attempts",
       {fentry_pair("nf_conntrack_tuple_taken", BpfObject::Nat, {"tuple_taken_fexit"}, false),
        kprobe_pair("nf_conntrack_tuple_taken", BpfObject::Nat, {"tuple_taken_kprobe", "tuple_taken_kretprobe"})},
       "no per-allocation attempt counts"},
      {"nf_conntrack_find_get",
       "SNAT port search attempts of 6.5+ \"try harder\" (TCP SYN, last 32 candidates)",
       {fentry_pair("nf_conntrack_find_get", BpfObject::Nat, {"find_get_fexit"}, false),
        kprobe_pair("nf_conntrack_find_get", BpfObject::Nat, {"find_get_kprobe", "find_get_kretprobe"})},
       "attempts of the try-harder path not observed"},
      {"__nft_trace_packet",
       "nftables trace id of each skb (exact join with nftrace)",
       {Variant{"fentry", {{K::Fentry, "__nft_trace_packet"}}, false, BpfObject::NftTrace, {"nft_trace_fentry"}, "pkt,"},
        Variant{"fentry", {{K::Fentry, "__nft_trace_packet"}}, false, BpfObject::NftTrace, {"nft_trace_old_fentry"}, "info,"},
        Variant{"kprobe", {{K::Kprobe, "__nft_trace_packet"}}, false, BpfObject::NftTrace, {"nft_trace_kprobe"}, "pkt,"},
        Variant{"kprobe", {{K::Kprobe, "__nft_trace_packet"}}, false, BpfObject::NftTrace, {"nft_trace_old_kprobe"}, "info,"}},
       "join on skb, headers and time"},
      // Variadic: fentry cannot attach (BTF trampolines refuse "..."). 5.14+
      // takes the hook state; before, (skb, net, pf, protonum, fmt, ...).
      {"nf_l4proto_log_invalid",
       "conntrack's reason for INVALID packets, with no setting changed",
       {Variant{"kprobe", {{K::Kprobe, "nf_l4proto_log_invalid"}}, false, BpfObject::Conntrack, {"ct_invalid_kprobe"},
                "skb,state,protonum,fmt,"}},
       "nf_conntrack_log_invalid routed to NFLOG for the run"},
  };
  return specs;
}

const HookSpec* find_hook(const std::string& name) {
  for (const auto& s : hook_specs())
    if (s.name == name) return &s;
  return nullptr;
}

Result<Plan> make_plan(Features& features, const PlanRequest& request) {
  Plan plan;
  std::vector<std::string> wanted = request.hooks;
  for (const auto& r : request.required)
    if (std::find(wanted.begin(), wanted.end(), r) == wanted.end()) wanted.push_back(r);

  for (const auto& name : wanted) {
    const HookSpec* spec = find_hook(name);
    if (!spec) return usage_error("unknown hook '" + name + "'", "run `natbpf probe` to list hooks");
    HookChoice choice{name, std::nullopt, {}, spec->fallback};
    for (const auto& v : spec->variants) {
      std::string why;
      for (const auto& [kind, target] : v.needs) {
        if (request.no_fentry && is_fentry(kind)) why = "disabled by --no-fentry";
        else if (request.no_kprobe && is_kprobe(kind)) why = "disabled by --no-kprobe";
        else if (auto a = features.attach(kind, target); !a.ok) why = a.reason;
        if (!why.empty()) break;
      }
      if (why.empty() && v.needs_drop_reason) {
        if (auto a = features.kfree_skb_reason(); !a.ok) why = a.reason;
      }
      if (why.empty() && !v.params.empty()) {
        std::string actual = features.params(v.needs.front().second);
        if (actual.rfind(v.params, 0) != 0)
          why = "arguments are (" + actual + ") here, not (" + v.params + "...)";
      }
      if (why.empty()) {
        choice.variant = v;
        break;
      }
      choice.rejected.push_back(v.label + ": " + why);
    }
    if (!choice.variant && request.required.count(name)) {
      std::string reasons;
      for (const auto& r : choice.rejected) reasons += (reasons.empty() ? "" : "; ") + r;
      return Error{"cannot attach hook " + name + " (" + reasons + ")",
                   "drop --hook " + name + " to let natbpf fall back to " + spec->fallback, 1};
    }
    plan.choices.push_back(std::move(choice));
  }
  return plan;
}

size_t Plan::attached() const {
  return std::count_if(choices.begin(), choices.end(), [](const HookChoice& c) { return c.variant.has_value(); });
}

bool Plan::enables(const std::string& program) const {
  for (const auto& c : choices)
    if (c.variant && std::count(c.variant->programs.begin(), c.variant->programs.end(), program)) return true;
  return false;
}

bool Plan::uses(BpfObject object) const {
  for (const auto& c : choices)
    if (c.variant && c.variant->object == object) return true;
  return false;
}

bool Plan::has(const std::string& hook) const {
  for (const auto& c : choices)
    if (c.hook == hook && c.variant) return true;
  return false;
}

namespace {

// "no fentry/kprobe here", "not in this kernel", "fentry disabled, no kprobe here"
std::string short_reason(const HookChoice& c) {
  bool all_missing = !c.rejected.empty();
  std::string disabled, unavailable;
  for (const auto& r : c.rejected) {
    std::string kind = r.substr(0, r.find_first_of("/:"));
    if (r.find("no such symbol") == std::string::npos) all_missing = false;
    std::string& list = r.find("disabled by") != std::string::npos ? disabled : unavailable;
    list += (list.empty() ? "" : "/") + kind;
  }
  if (all_missing) return "not in this kernel";
  std::string s;
  if (!disabled.empty()) s = disabled + " disabled";
  if (!unavailable.empty()) s += (s.empty() ? "no " : ", no ") + unavailable + " here";
  return s;
}

}  // namespace

std::string Plan::summary() const {
  std::string s = "attached " + std::to_string(attached()) + "/" + std::to_string(choices.size()) + " hooks";
  std::string missing;
  for (const auto& c : choices) {
    if (c.variant) continue;
    missing += (missing.empty() ? "" : "; ") + c.hook + ": " + short_reason(c) + ", using " + c.fallback;
  }
  if (!missing.empty()) s += " (" + missing + ")";
  return s;
}

}  // namespace natbpf

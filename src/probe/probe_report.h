// What `natbpf probe` reports: gathered from the kernel once, rendered as
// text or JSON by output/probe_render.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "probe/attach_plan.h"
#include "probe/features.h"

namespace natbpf {

struct FunctionReport {
  std::string name;
  bool in_kallsyms = false;
  std::map<std::string, Availability> attach;  // "fentry", "fexit", "kprobe", "kretprobe"
};

struct ProbeReport {
  std::string kernel_release;
  bool vmlinux_btf = false;
  std::vector<std::string> module_btf;
  std::map<std::string, bool> capabilities;
  std::vector<FunctionReport> functions;
  Availability tp_btf_kfree_skb, raw_tp_kfree_skb, kfree_skb_reason;
  Availability nftrace_netlink, ctnetlink, conntrack_stats;
  Plan plan;  // the plan `trace`, `clash` and `drops` would start from, all hooks
};

ProbeReport gather_probe_report(KernelFeatures& features, const PlanRequest& request);

}  // namespace natbpf

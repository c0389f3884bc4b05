#include "probe/probe_report.h"

namespace natbpf {

ProbeReport gather_probe_report(KernelFeatures& features, const PlanRequest& request) {
  ProbeReport r;
  r.kernel_release = features.kernel_release();
  r.vmlinux_btf = features.has_vmlinux_btf();
  r.module_btf = features.module_btf();
  r.capabilities = features.capabilities();
  for (const auto& fn : traced_functions()) {
    FunctionReport f{fn, features.kallsyms_has(fn), {}};
    for (AttachKind k : {AttachKind::Fentry, AttachKind::Fexit, AttachKind::Kprobe, AttachKind::Kretprobe})
      f.attach[to_string(k)] = features.attach(k, fn);
    r.functions.push_back(std::move(f));
  }
  r.tp_btf_kfree_skb = features.attach(AttachKind::TpBtf, "kfree_skb");
  r.raw_tp_kfree_skb = features.attach(AttachKind::RawTp, "kfree_skb");
  r.kfree_skb_reason = features.kfree_skb_reason();
  r.nftrace_netlink = features.nftrace_netlink();
  r.ctnetlink = features.ctnetlink();
  r.conntrack_stats = features.conntrack_stats();
  auto plan = make_plan(features, request);
  if (plan) r.plan = plan.value();
  return r;
}

}  // namespace natbpf

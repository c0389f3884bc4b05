#include "output/probe_render.h"

#include <sstream>

#include "output/schema.h"

namespace natbpf {
namespace {

// reason: why not (null when ok); detail: what an available feature noted.
nlohmann::json avail(const Availability& a) {
  return {{"ok", a.ok}, {"reason", a.ok ? nlohmann::json() : or_null(a.reason)},
          {"detail", a.ok ? or_null(a.reason) : nlohmann::json()}};
}

std::string avail_text(const Availability& a) {
  if (a.ok) return a.reason.empty() ? "yes" : "yes (" + a.reason + ")";
  return "no: " + a.reason;
}

}  // namespace

nlohmann::json probe_to_json(const ProbeReport& r) {
  nlohmann::json j{{"type", "probe"}, {"schema_version", kSchemaVersion}, {"kernel_release", r.kernel_release}};
  j["btf"] = {{"vmlinux", r.vmlinux_btf}, {"modules", r.module_btf}};
  j["capabilities"] = r.capabilities;
  j["functions"] = nlohmann::json::array();
  for (const auto& f : r.functions) {
    nlohmann::json fj{{"name", f.name}, {"kallsyms", f.in_kallsyms}};
    for (const auto& [kind, a] : f.attach) fj[kind] = avail(a);
    j["functions"].push_back(fj);
  }
  j["tracepoints"] = {{"kfree_skb", {{"tp_btf", avail(r.tp_btf_kfree_skb)},
                                     {"raw_tp", avail(r.raw_tp_kfree_skb)},
                                     {"drop_reason", avail(r.kfree_skb_reason)}}}};
  j["netlink"] = {{"nftrace", avail(r.nftrace_netlink)},
                  {"ctnetlink", avail(r.ctnetlink)},
                  {"conntrack_stats", avail(r.conntrack_stats)}};
  nlohmann::json hooks = nlohmann::json::array();
  for (const auto& c : r.plan.choices) {
    hooks.push_back({{"hook", c.hook},
                     {"attached", c.variant.has_value()},
                     {"rejected", c.rejected},
                     {"variant", c.variant ? nlohmann::json(c.variant->label) : nlohmann::json()},
                     {"fallback", c.variant ? nlohmann::json() : or_null(c.fallback)}});
  }
  j["plan"] = {{"hooks", hooks}, {"summary", r.plan.summary()}};
  return j;
}

std::string probe_to_text(const ProbeReport& r) {
  std::ostringstream o;
  o << "kernel        " << r.kernel_release << "\n";
  o << "BTF           vmlinux " << (r.vmlinux_btf ? "yes" : "NO (install a kernel with CONFIG_DEBUG_INFO_BTF)");
  o << ", modules " << (r.module_btf.empty() ? "none (netfilter built in or no module BTF)" : "");
  for (size_t i = 0; i < r.module_btf.size(); i++) o << (i ? " " : "") << r.module_btf[i];
  o << "\ncapabilities ";
  for (const auto& [cap, has] : r.capabilities) o << " " << cap << (has ? "=yes" : "=NO");
  o << "\n\nfunctions:\n";
  for (const auto& f : r.functions) {
    o << "  " << f.name << (f.in_kallsyms ? "" : "  (not in kallsyms)") << "\n";
    for (const auto& [kind, a] : f.attach) o << "    " << kind << ": " << avail_text(a) << "\n";
  }
  o << "\ntracepoints:\n";
  o << "  skb:kfree_skb tp_btf: " << avail_text(r.tp_btf_kfree_skb) << "\n";
  o << "  skb:kfree_skb raw_tp: " << avail_text(r.raw_tp_kfree_skb) << "\n";
  o << "  drop reason:          " << avail_text(r.kfree_skb_reason) << "\n";
  o << "\nnetlink:\n";
  o << "  nftables trace:  " << avail_text(r.nftrace_netlink) << "\n";
  o << "  ctnetlink:       " << avail_text(r.ctnetlink) << "\n";
  o << "  conntrack stats: " << avail_text(r.conntrack_stats) << "\n";
  o << "\nattach plan:\n";
  for (const auto& c : r.plan.choices) {
    o << "  " << c.hook << ": " << (c.variant ? c.variant->label : "none, using " + c.fallback) << "\n";
    for (const auto& why : c.rejected) o << "      not " << why << "\n";
  }
  o << r.plan.summary() << "\n";
  return o.str();
}

}  // namespace natbpf

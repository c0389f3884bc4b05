#include "probe/features.h"
#include "probe/kallsyms.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "kernel/ct_stats.h"
#include "probe.skel.h"
#include "probe/tracing_probe.h"
#include "util/libbpf_quiet.h"

namespace natbpf {
namespace fs = std::filesystem;

const char* to_string(AttachKind kind) {
  switch (kind) {
    case AttachKind::Fentry: return "fentry";
    case AttachKind::Fexit: return "fexit";
    case AttachKind::Kprobe: return "kprobe";
    case AttachKind::Kretprobe: return "kretprobe";
    case AttachKind::TpBtf: return "tp_btf";
    case AttachKind::RawTp: return "raw_tp";
  }
  return "?";
}

const std::vector<std::string>& traced_functions() {
  static const std::vector<std::string> names = {
      "nf_hook_slow",        "__nf_conntrack_confirm", "nf_ct_resolve_clash",
      "nf_nat_l4proto_unique_tuple", "nf_nat_setup_info", "nf_conntrack_tuple_taken", "nf_conntrack_find_get",
      "nf_conntrack_in",     "__nft_trace_packet",     "nft_trace_notify",
      "ipt_do_table"};
  return names;
}

namespace {

// Static functions the compiler folds into their single caller on the kernels
// we know (KERNEL-NOTES §2.3, §3.1): say so instead of "not found".
bool usually_inlined(const std::string& fn) {
  return fn == "nf_nat_l4proto_unique_tuple" || fn == "get_unique_tuple" ||
         fn == "nf_ct_resolve_clash_harder" || fn == "nf_nat_used_tuple";
}

struct SkelDeleter {
  void operator()(probe_bpf* s) const { probe_bpf::destroy(s); }
};
struct LinkDeleter {
  void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};

bpf_program* program_for(probe_bpf* skel, AttachKind kind) {
  switch (kind) {
    case AttachKind::Fentry: return skel->progs.probe_fentry;
    case AttachKind::Fexit: return skel->progs.probe_fexit;
    case AttachKind::Kprobe:
    case AttachKind::Kretprobe: return skel->progs.probe_kprobe;
    case AttachKind::TpBtf: return skel->progs.probe_tp_btf;
    case AttachKind::RawTp: return skel->progs.probe_raw_tp;
  }
  return nullptr;
}

// A refused probe load makes libbpf retry with a verifier log; without a
// buffer of ours it allocates 16 MB for it, natbpf's peak memory.
void small_log(bpf_program* prog) {
  static char log[64 * 1024];
  bpf_program__set_log_buf(prog, log, sizeof(log));
}

}  // namespace

KernelFeatures::KernelFeatures(SystemPaths paths) : paths_(std::move(paths)) {}
KernelFeatures::~KernelFeatures() {
  while (!btfs_.empty()) btfs_.pop_back();  // module BTF before the vmlinux BTF it is split from
}

std::string KernelFeatures::kernel_release() const {
  utsname u{};
  if (uname(&u) != 0) return "unknown";
  return u.release;
}

bool KernelFeatures::has_vmlinux_btf() const { return fs::exists(paths_.btf_dir + "/vmlinux"); }

std::vector<std::string> KernelFeatures::module_btf() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(paths_.btf_dir, ec)) {
    std::string name = entry.path().filename();
    if (name == "vmlinux") continue;
    if (name.rfind("nf_", 0) == 0 || name.rfind("nft_", 0) == 0 || name.rfind("ip", 0) == 0 ||
        name.rfind("x_tables", 0) == 0 || name.rfind("nfnetlink", 0) == 0)
      out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void KernelFeatures::load_kallsyms() {
  if (kallsyms_) return;
  kallsyms_.emplace();
  // Only netfilter's functions (traced_functions(), the hook specs) and
  // kfree_skb are ever asked about: keeping
  // every kernel symbol cost megabytes and a sort.
  for_each_kallsyms_line(paths_.kallsyms, [&](std::string_view line) {
    // "ffffffff81000000 T name [module]"
    size_t a = line.find(' ');
    if (a == std::string_view::npos) return;
    size_t b = line.find(' ', a + 1);
    if (b == std::string_view::npos) return;
    std::string_view name = line.substr(b + 1);
    name = name.substr(0, name.find_first_of(" \t"));
    std::string_view bare = name.substr(name.find_first_not_of('_') == std::string_view::npos
                                            ? 0
                                            : name.find_first_not_of('_'));
    if (bare.rfind("nf", 0) == 0 || bare.rfind("ipt_", 0) == 0 || bare.rfind("kfree_skb", 0) == 0)
      kallsyms_->emplace_back(name);
  });
  std::sort(kallsyms_->begin(), kallsyms_->end());
}

bool KernelFeatures::kallsyms_has(const std::string& symbol) {
  load_kallsyms();
  return std::binary_search(kallsyms_->begin(), kallsyms_->end(), symbol);
}

bool KernelFeatures::kprobes_supported() const {
  // The kprobe PMU (4.17+) is what libbpf uses; the tracefs kprobe_events
  // file is the legacy way. Neither exists without CONFIG_KPROBES.
  return fs::exists(paths_.kprobe_pmu) || fs::exists("/sys/kernel/tracing/kprobe_events") ||
         fs::exists("/sys/kernel/debug/tracing/kprobe_events");
}

std::map<std::string, bool> KernelFeatures::capabilities() const {
  std::ifstream in(paths_.proc_status);
  std::string line;
  unsigned long long eff = 0;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) == 0) eff = std::stoull(line.substr(7), nullptr, 16);
  }
  auto has = [eff](int bit) { return (eff >> bit) & 1ULL; };
  return {{"CAP_BPF", has(39)}, {"CAP_PERFMON", has(38)}, {"CAP_NET_ADMIN", has(12)}, {"CAP_SYS_ADMIN", has(21)}};
}

Availability KernelFeatures::attach(AttachKind kind, const std::string& target) {
  auto key = std::make_pair(kind, target);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  bool trampoline = kind == AttachKind::Fentry || kind == AttachKind::Fexit;
  // A kernel that refuses to load one tracing program (EPERM: lockdown, an
  // LSM) refuses them all: the other targets are not loaded again.
  if (trampoline && trampoline_refusal_ && has_function(target)) return cache_[key] = *trampoline_refusal_;
  // fentry and fexit of one function are asked together: try both in one
  // load (one BTF parse, which is slow under emulation); only if that fails
  // probe them apart to tell which one is refused.
  if ((kind == AttachKind::Fentry || kind == AttachKind::Fexit) && probe_trampoline_pair(target)) {
    cache_[{AttachKind::Fentry, target}] = cache_[{AttachKind::Fexit, target}] = Availability{true, ""};
    return cache_[key];
  }
  Availability a = probe_attach(kind, target);
  cache_[key] = a;
  return a;
}

bool KernelFeatures::probe_trampoline_pair(const std::string& target) {
  auto where = btf_target(AttachKind::Fentry, target);
  return where && probe_tracing({TracingKind::Fentry, TracingKind::Fexit}, *where).ok();
}

// The BTF id a tracing program of this kind attaches to: the function
// (fentry, fexit) or the tracepoint's btf_trace_NAME typedef (tp_btf), in
// vmlinux or a netfilter module.
std::optional<BtfTarget> KernelFeatures::btf_target(AttachKind kind, const std::string& target) {
  load_btf();
  bool tp = kind == AttachKind::TpBtf;
  std::string name = tp ? "btf_trace_" + target : target;
  for (size_t i = 0; i < btfs_.size(); i++) {
    int id = btf__find_by_name_kind(btfs_[i].get(), name.c_str(), tp ? BTF_KIND_TYPEDEF : BTF_KIND_FUNC);
    if (id > 0) return BtfTarget{id, btf_modules_[i]};
  }
  return std::nullopt;
}

Availability KernelFeatures::probe_tracing_kind(AttachKind kind, const std::string& target) {
  auto where = btf_target(kind, target);
  if (!where) return {false, "no BTF for " + target};
  TracingKind tk = kind == AttachKind::Fentry  ? TracingKind::Fentry
                   : kind == AttachKind::Fexit ? TracingKind::Fexit
                                               : TracingKind::TpBtf;
  TracingProbe p = probe_tracing({tk}, *where);
  if (int e = p.load_errno) {
    if (e == ESRCH || e == ENOENT) return {false, "no BTF for " + target};
    Availability refused{false, "program load refused (" + errno_name(e) + ")"};
    if (e == EPERM && kind != AttachKind::TpBtf) trampoline_refusal_ = refused;
    return refused;
  }
  if (p.attach_errno) return {false, "attach refused (" + errno_name(p.attach_errno) + ")"};
  return {true, ""};
}

Availability KernelFeatures::probe_attach(AttachKind kind, const std::string& target) {
  bool is_function = kind != AttachKind::TpBtf && kind != AttachKind::RawTp;
  if (is_function && !has_function(target)) {
    if (usually_inlined(target)) return {false, "no such symbol, inlined into its caller"};
    return {false, "no such symbol in this kernel"};
  }
  if ((kind == AttachKind::Kprobe || kind == AttachKind::Kretprobe) && !kprobes_supported())
    return {false, "kernel has no kprobe support"};

  if (kind == AttachKind::Fentry || kind == AttachKind::Fexit || kind == AttachKind::TpBtf)
    return probe_tracing_kind(kind, target);

  LibbpfQuiet quiet;
  std::unique_ptr<probe_bpf, SkelDeleter> skel(probe_bpf::open());
  if (!skel) return {false, "cannot open probe object (" + errno_name(errno) + ")"};
  bpf_program* chosen = program_for(skel.get(), kind);
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel->obj) {
    bpf_program__set_autoload(prog, prog == chosen);
    small_log(prog);
  }
  int err = probe_bpf::load(skel.get());
  if (err) {
    int e = -err;
    if (e == ESRCH || e == ENOENT) return {false, "no BTF for " + target};
    return {false, "program load refused (" + errno_name(e) + ")"};
  }
  bpf_link* raw = nullptr;
  switch (kind) {
    case AttachKind::Fentry:
    case AttachKind::Fexit:
    case AttachKind::TpBtf: break;  // probe_tracing_kind
    case AttachKind::Kprobe:
    case AttachKind::Kretprobe: {
      // One loaded program answers both: attach it as the other kind too.
      bool ret = kind == AttachKind::Kretprobe;
      std::unique_ptr<bpf_link, LinkDeleter> other(bpf_program__attach_kprobe(chosen, !ret, target.c_str()));
      cache_[{ret ? AttachKind::Kprobe : AttachKind::Kretprobe, target}] =
          other ? Availability{true, ""} : Availability{false, "attach refused (" + errno_name(errno) + ")"};
      raw = bpf_program__attach_kprobe(chosen, ret, target.c_str());
      break;
    }
    case AttachKind::RawTp: raw = bpf_program__attach_raw_tracepoint(chosen, target.c_str()); break;
  }
  std::unique_ptr<bpf_link, LinkDeleter> link(raw);
  if (!link) return {false, "attach refused (" + errno_name(errno) + ")"};
  return {true, ""};
}

Availability KernelFeatures::kfree_skb_reason() {
  if (reason_cache_) return *reason_cache_;
  Availability a{false, "no vmlinux BTF"};
  load_btf();
  const btf* vmlinux = btfs_.empty() ? nullptr : btfs_.front().get();
  if (vmlinux) {
    a = {false, "skb:kfree_skb has no reason argument (kernel before 5.17)"};
    int id = btf__find_by_name_kind(vmlinux, "btf_trace_kfree_skb", BTF_KIND_TYPEDEF);
    if (id > 0) {
      const btf_type* t = btf__type_by_id(vmlinux, btf__resolve_type(vmlinux, id));
      if (t && btf_is_ptr(t)) t = btf__type_by_id(vmlinux, t->type);
      if (t && btf_is_func_proto(t) && btf_vlen(t) >= 4) {
        // (void *__data, skb, location, enum skb_drop_reason reason, ...)
        const btf_param* p = btf_params(t);
        const btf_type* rt = btf__type_by_id(vmlinux, p[3].type);
        std::string name = rt ? btf__name_by_offset(vmlinux, rt->name_off) : "";
        if (name == "skb_drop_reason") {
          a = {false, "enum skb_drop_reason has no NETFILTER_DROP"};
          int n = btf_vlen(rt);
          const struct btf_enum* e = btf_enum(rt);
          for (int i = 0; i < n; i++) {
            if (std::strcmp(btf__name_by_offset(vmlinux, e[i].name_off), "SKB_DROP_REASON_NETFILTER_DROP") == 0)
              a = Availability{true, "NETFILTER_DROP = " + std::to_string(e[i].val)};
          }
        }
      }
    }
  }
  reason_cache_ = a;
  return a;
}

void KernelFeatures::load_btf() {
  if (btf_loaded_) return;
  btf_loaded_ = true;
  LibbpfQuiet quiet;
  btf* vmlinux = btf__parse((paths_.btf_dir + "/vmlinux").c_str(), nullptr);
  if (!vmlinux) return;
  btfs_.emplace_back(vmlinux, btf__free);
  btf_modules_.emplace_back();
  // Netfilter as modules: their functions are in module BTF (5.11+).
  for (const auto& name : module_btf()) {
    btf* mod = btf__parse_split((paths_.btf_dir + "/" + name).c_str(), vmlinux);
    if (!mod) continue;
    btfs_.emplace_back(mod, btf__free);
    btf_modules_.push_back(name);
  }
}

std::optional<std::pair<const btf*, int>> KernelFeatures::find_function(const std::string& function) {
  load_btf();
  for (const auto& b : btfs_) {
    int id = btf__find_by_name_kind(b.get(), function.c_str(), BTF_KIND_FUNC);
    if (id > 0) return std::make_pair(static_cast<const btf*>(b.get()), id);
  }
  return std::nullopt;
}

// A function that can be traced has BTF (fentry needs it; pahole leaves out
// functions that were only inlined): vmlinux BTF and the netfilter modules',
// parsed once, answer without reading /proc/kallsyms, whose formatting by
// the kernel was most of natbpf's start-up.
bool KernelFeatures::has_function(const std::string& function) {
  load_btf();
  if (btfs_.empty()) return kallsyms_has(function);  // no BTF: natbpf does not run anyway
  return find_function(function).has_value();
}

std::string KernelFeatures::params(const std::string& function) {
  if (auto it = params_cache_.find(function); it != params_cache_.end()) return it->second;
  std::string& result = params_cache_[function];
  auto found = find_function(function);
  if (!found) return result;
  auto [b, id] = *found;
  const btf_type* proto = btf__type_by_id(b, btf__type_by_id(b, id)->type);
  if (proto && btf_is_func_proto(proto))
    for (int i = 0; i < btf_vlen(proto); i++)
      result += std::string(btf__name_by_offset(b, btf_params(proto)[i].name_off)) + ",";
  return result;
}

Availability KernelFeatures::nftrace_netlink() {
  std::unique_ptr<mnl_socket, decltype(&mnl_socket_close)> nl(mnl_socket_open(NETLINK_NETFILTER),
                                                              mnl_socket_close);
  if (!nl) return {false, "netlink socket refused (" + errno_name(errno) + ")"};
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return {false, "netlink bind refused (" + errno_name(errno) + ")"};
  int group = NFNLGRP_NFTRACE;
  if (mnl_socket_setsockopt(nl.get(), NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) < 0)
    return {false, "joining NFNLGRP_NFTRACE refused (" + errno_name(errno) + ")"};
  return {true, ""};
}

Availability KernelFeatures::ctnetlink() {
  auto stats = read_ct_stats();
  if (!stats) return {false, stats.error().to_string()};
  return {true, std::to_string(stats->size()) + " CPUs"};
}

Availability KernelFeatures::conntrack_stats() {
  auto stats = read_ct_stats();
  if (!stats) return {false, stats.error().to_string()};
  auto t = CtStatsTotals::sum(*stats);
  std::string have = "insert_failed drop early_drop";
  if (t.has_clash_resolve) have += " clash_resolve";
  if (t.has_chaintoolong) have += " chaintoolong";
  return {true, have};
}

}  // namespace natbpf

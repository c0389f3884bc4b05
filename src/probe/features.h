// "Can I use X here?" One class answers, by loading and attaching tiny
// programs; answers are cached, printable (natbpf probe) and replaceable by a
// fake in unit tests.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "probe/tracing_probe.h"

struct btf;

namespace natbpf {

enum class AttachKind { Fentry, Fexit, Kprobe, Kretprobe, TpBtf, RawTp };
const char* to_string(AttachKind kind);

struct Availability {
  bool ok = false;
  std::string reason;  // why not, in words; empty when ok
};

// The functions natbpf knows how to use, in the order `probe` reports them.
const std::vector<std::string>& traced_functions();

class Features {
 public:
  virtual ~Features() = default;
  // Whether a program of this kind loads and attaches to `target` (a kernel
  // function, or a tracepoint name for TpBtf/RawTp).
  virtual Availability attach(AttachKind kind, const std::string& target) = 0;
  // skb:kfree_skb passes an enum skb_drop_reason with NETFILTER_DROP.
  virtual Availability kfree_skb_reason() = 0;
  // Name of a kernel function's first parameter in BTF ("" if unknown): tells
  // signature variants apart (__nft_trace_packet: "pkt" 6.4+, "info" before).
  // The BTF names of a function's parameters, each followed by ","
  // ("skb,state,protonum,fmt,," for a variadic one); "" when unknown.
  virtual std::string params(const std::string& function) = 0;
};

// The running kernel. System paths are injectable so tests can point them at
// fixtures.
struct SystemPaths {
  std::string kallsyms = "/proc/kallsyms";
  std::string btf_dir = "/sys/kernel/btf";
  std::string kprobe_pmu = "/sys/bus/event_source/devices/kprobe/type";
  std::string proc_status = "/proc/self/status";
};

class KernelFeatures : public Features {
 public:
  explicit KernelFeatures(SystemPaths paths = {});
  ~KernelFeatures() override;

  Availability attach(AttachKind kind, const std::string& target) override;
  Availability kfree_skb_reason() override;
  std::string params(const std::string& function) override;

  std::string kernel_release() const;
  bool has_vmlinux_btf() const;
  std::vector<std::string> module_btf() const;  // modules with BTF, of interest to natbpf
  bool kallsyms_has(const std::string& symbol);
  // The function has BTF (vmlinux or a netfilter module): it exists and is not only inlined.
  bool has_function(const std::string& function);
  // vmlinux BTF as parsed for the plan (nullptr before any question needed
  // it, or without BTF).
  const ::btf* vmlinux_btf() const { return btfs_.empty() ? nullptr : btfs_.front().get(); }
  // Frees the parsed BTF (answers already given stay cached).
  void release_btf() {
    while (!btfs_.empty()) btfs_.pop_back();
    btf_modules_.clear();
  }
  bool kprobes_supported() const;
  // Capabilities in the effective set, by name (CAP_BPF, ...).
  std::map<std::string, bool> capabilities() const;
  Availability nftrace_netlink();
  Availability ctnetlink();
  Availability conntrack_stats();

 private:
  Availability probe_attach(AttachKind kind, const std::string& target);
  bool probe_trampoline_pair(const std::string& target);
  Availability probe_tracing_kind(AttachKind kind, const std::string& target);
  std::optional<BtfTarget> btf_target(AttachKind kind, const std::string& target);
  void load_kallsyms();
  void load_btf();
  std::optional<std::pair<const btf*, int>> find_function(const std::string& function);

  SystemPaths paths_;
  std::map<std::pair<AttachKind, std::string>, Availability> cache_;
  std::optional<Availability> reason_cache_;
  std::map<std::string, std::string> params_cache_;
  std::optional<std::vector<std::string>> kallsyms_;
  std::optional<Availability> trampoline_refusal_;  // fentry/fexit refused kernel-wide (EPERM)
  bool btf_loaded_ = false;
  std::vector<std::unique_ptr<btf, void (*)(btf*)>> btfs_;  // vmlinux first, then netfilter modules
  std::vector<std::string> btf_modules_;                    // each one's module name, "" for vmlinux
};

}  // namespace natbpf

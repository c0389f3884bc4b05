// The attach plan: for each hook natbpf wants, the first variant this kernel
// allows (fentry/fexit, then kprobe/kretprobe, then tracepoints), decided
// from Features before anything is loaded.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "probe/features.h"
#include "util/result.h"

namespace natbpf {

enum class BpfObject { Hooks, Conntrack, Nat, NftTrace };

struct Variant {
  std::string label;                                        // "fexit", "kprobe", "tp_btf"
  std::vector<std::pair<AttachKind, std::string>> needs;    // every one must attach
  bool needs_drop_reason = false;                           // skb:kfree_skb with reasons
  BpfObject object;
  std::vector<std::string> programs;                        // BPF program names to enable
  std::string params;  // signature variant: the BTF parameter names start so ("pkt,", "skb,state,")
};

struct HookSpec {
  std::string name;                 // what users name with --hook
  std::string purpose;              // one phrase for `probe`
  std::vector<Variant> variants;    // best first
  std::string fallback;             // what natbpf uses when none attaches
};

// Every hook natbpf knows, in a stable order.
const std::vector<HookSpec>& hook_specs();
const HookSpec* find_hook(const std::string& name);

struct PlanRequest {
  std::vector<std::string> hooks;    // wanted, in auto mode
  std::set<std::string> required;    // named by the user: failing to attach is an error
  bool no_fentry = false;            // --no-fentry / NATBPF_NO_FENTRY=1
  bool no_kprobe = false;
};

struct HookChoice {
  std::string hook;
  std::optional<Variant> variant;    // empty: not attached
  std::vector<std::string> rejected; // "fexit: program load refused (EPERM)", ...
  std::string fallback;
};

struct Plan {
  std::vector<HookChoice> choices;

  size_t attached() const;
  bool enables(const std::string& program) const;
  bool uses(BpfObject object) const;
  bool has(const std::string& hook) const;
  // "attached 3/5 hooks (nf_ct_resolve_clash: fexit: ..., using kfree_skb + conntrack stats)"
  std::string summary() const;
};

Result<Plan> make_plan(Features& features, const PlanRequest& request);

}  // namespace natbpf

// Every attach-plan decision, against fake kernel features.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include <bpf/libbpf.h>

#include <set>

#include "conntrack.skel.h"
#include "hooks.skel.h"
#include "nat.skel.h"
#include "nftrace.skel.h"
#include "probe/attach_plan.h"
#include "util/libbpf_quiet.h"

namespace natbpf {
namespace {

using ::testing::HasSubstr;

class FakeFeatures : public Features {
 public:
  // Everything refused unless allowed.
  std::map<std::pair<AttachKind, std::string>, Availability> allowed;
  Availability reason{true, "NETFILTER_DROP = 12"};
  int calls = 0;

  void allow(AttachKind k, const std::string& target) { allowed[{k, target}] = {true, ""}; }
  void allow_fentry(const std::string& fn) {
    allow(AttachKind::Fentry, fn);
    allow(AttachKind::Fexit, fn);
  }
  void allow_kprobe(const std::string& fn) {
    allow(AttachKind::Kprobe, fn);
    allow(AttachKind::Kretprobe, fn);
  }
  Availability attach(AttachKind kind, const std::string& target) override {
    calls++;
    auto it = allowed.find({kind, target});
    if (it != allowed.end()) return it->second;
    if (kind == AttachKind::Kprobe || kind == AttachKind::Kretprobe) return {false, "kernel has no kprobe support"};
    return {false, "program load refused (EPERM)"};
  }
  Availability kfree_skb_reason() override { return reason; }
  std::string first_param_name = "pkt";
  std::string params(const std::string&) override { return first_param_name + ",verdict,"; }
};

std::vector<std::string> all_hooks() {
  std::vector<std::string> v;
  for (const auto& s : hook_specs()) v.push_back(s.name);
  return v;
}

const HookChoice& choice(const Plan& p, const std::string& hook) {
  for (const auto& c : p.choices)
    if (c.hook == hook) return c;
  throw std::runtime_error("no choice for " + hook);
}

TEST(AttachPlan, TracepointOnlyKernelLikeThisMachine) {
  FakeFeatures f;
  f.allow(AttachKind::TpBtf, "kfree_skb");
  f.allow(AttachKind::RawTp, "kfree_skb");
  auto plan = make_plan(f, {all_hooks(), {}, false, false});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->attached(), 1u);
  EXPECT_TRUE(plan->enables("kfree_skb_btf"));
  EXPECT_FALSE(plan->enables("kfree_skb_raw"));
  EXPECT_FALSE(plan->enables("confirm_fexit"));
  EXPECT_THAT(plan->summary(), HasSubstr("attached 1/9 hooks"));
  EXPECT_THAT(plan->summary(),
              HasSubstr("nf_ct_resolve_clash: no fentry/kprobe here, using kfree_skb + conntrack stats"));
  EXPECT_THAT(choice(*plan, "nf_hook_slow").rejected[0], HasSubstr("program load refused (EPERM)"));
}

TEST(AttachPlan, FentryPreferredOverKprobe) {
  FakeFeatures f;
  f.allow_fentry("__nf_conntrack_confirm");
  f.allow_kprobe("__nf_conntrack_confirm");
  auto plan = make_plan(f, {{"__nf_conntrack_confirm"}, {}, false, false});
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->enables("confirm_fentry"));
  EXPECT_TRUE(plan->enables("confirm_fexit"));
  EXPECT_FALSE(plan->enables("confirm_kprobe"));
  EXPECT_TRUE(plan->uses(BpfObject::Conntrack));
  EXPECT_FALSE(plan->uses(BpfObject::Nat));
  EXPECT_EQ(plan->summary(), "attached 1/1 hooks");
}

TEST(AttachPlan, NoFentryFallsBackToKprobe) {
  FakeFeatures f;
  f.allow_fentry("nf_hook_slow");
  f.allow_kprobe("nf_hook_slow");
  auto plan = make_plan(f, {{"nf_hook_slow"}, {}, true, false});
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->enables("hook_slow_kprobe"));
  EXPECT_TRUE(plan->enables("hook_slow_kretprobe"));
  EXPECT_FALSE(plan->enables("hook_slow_fexit"));
  EXPECT_EQ(choice(*plan, "nf_hook_slow").variant->label, "kprobe/kretprobe");
  EXPECT_THAT(choice(*plan, "nf_hook_slow").rejected[0], HasSubstr("disabled by --no-fentry"));
}

TEST(AttachPlan, FentryNeedsBothEntryAndExit) {
  FakeFeatures f;
  f.allow(AttachKind::Fexit, "nf_ct_resolve_clash");  // entry refused
  f.allow_kprobe("nf_ct_resolve_clash");
  auto plan = make_plan(f, {{"nf_ct_resolve_clash"}, {}, false, false});
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->enables("clash_kprobe"));
  EXPECT_FALSE(plan->enables("clash_fexit"));
}

TEST(AttachPlan, KfreeSkbWithoutReasonUsesRawTracepoint) {
  FakeFeatures f;
  f.allow(AttachKind::TpBtf, "kfree_skb");
  f.allow(AttachKind::RawTp, "kfree_skb");
  f.reason = {false, "skb:kfree_skb has no reason argument (kernel before 5.17)"};
  auto plan = make_plan(f, {{"kfree_skb"}, {}, false, false});
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->enables("kfree_skb_raw"));
  EXPECT_FALSE(plan->enables("kfree_skb_btf"));
  EXPECT_THAT(choice(*plan, "kfree_skb").rejected[0], HasSubstr("no reason argument"));
}

TEST(AttachPlan, RequiredHookThatCannotAttachIsAnError) {
  FakeFeatures f;
  auto plan = make_plan(f, {{}, {"nf_ct_resolve_clash"}, false, false});
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.error().message, HasSubstr("cannot attach hook nf_ct_resolve_clash"));
  EXPECT_THAT(plan.error().hint, HasSubstr("fall back to kfree_skb + conntrack stats"));
}

TEST(AttachPlan, RequiredHookThatAttachesIsKept) {
  FakeFeatures f;
  f.allow_kprobe("nf_nat_setup_info");
  auto plan = make_plan(f, {{"kfree_skb"}, {"nf_nat_setup_info"}, false, false});
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->has("nf_nat_setup_info"));
  EXPECT_FALSE(plan->has("kfree_skb"));
  EXPECT_EQ(plan->choices.size(), 2u);
}

TEST(AttachPlan, UnknownHookIsAUsageError) {
  FakeFeatures f;
  auto plan = make_plan(f, {{"nf_bogus"}, {}, false, false});
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().exit_code, 2);
}

TEST(AttachPlan, SymbolMissingEverywhereSaysNotInThisKernel) {
  struct Missing : FakeFeatures {
    Availability attach(AttachKind, const std::string&) override { return {false, "no such symbol in this kernel"}; }
  } f;
  auto plan = make_plan(f, {{"nf_ct_resolve_clash"}, {}, false, false});
  ASSERT_TRUE(plan.ok());
  EXPECT_THAT(plan->summary(), HasSubstr("nf_ct_resolve_clash: not in this kernel"));
}

TEST(AttachPlan, SignatureVariantFromFirstParameter) {
  FakeFeatures f;
  f.allow_fentry("__nft_trace_packet");
  f.first_param_name = "info";  // <= 6.3: (info, chain, type)
  auto plan = make_plan(f, {{"__nft_trace_packet"}, {}, false, false});
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->enables("nft_trace_old_fentry"));
  EXPECT_FALSE(plan->enables("nft_trace_fentry"));
  EXPECT_THAT(choice(*plan, "__nft_trace_packet").rejected[0], HasSubstr("arguments are (info,verdict,) here, not (pkt,...)"));
  f.first_param_name = "pkt";
  plan = make_plan(f, {{"__nft_trace_packet"}, {}, false, false});
  EXPECT_TRUE(plan->enables("nft_trace_fentry"));
  EXPECT_TRUE(plan->uses(BpfObject::NftTrace));
}

// The program names of each BPF object, read from the skeleton's ELF (open
// only: no load, no root).
template <typename Skel>
std::set<std::string> programs_of() {
  std::set<std::string> names;
  Skel* s = Skel::open();
  if (!s) return names;
  bpf_program* prog;
  bpf_object__for_each_program(prog, s->obj) names.insert(bpf_program__name(prog));
  Skel::destroy(s);
  return names;
}

TEST(AttachPlan, EveryVariantNamesRealProgramsOfItsObject) {
  LibbpfQuiet quiet;
  const std::map<BpfObject, std::set<std::string>> objects{
      {BpfObject::Hooks, programs_of<hooks_bpf>()},
      {BpfObject::Conntrack, programs_of<conntrack_bpf>()},
      {BpfObject::Nat, programs_of<nat_bpf>()},
      {BpfObject::NftTrace, programs_of<nftrace_bpf>()}};
  for (const auto& [object, names] : objects) ASSERT_FALSE(names.empty()) << "a skeleton did not open";
  for (const auto& spec : hook_specs()) {
    ASSERT_FALSE(spec.variants.empty()) << spec.name;
    for (const auto& v : spec.variants) {
      EXPECT_FALSE(v.programs.empty()) << spec.name << " " << v.label;
      const auto& names = objects.at(v.object);
      for (const auto& p : v.programs)
        EXPECT_TRUE(names.count(p)) << spec.name << " " << v.label << ": no program " << p << " in its object";
    }
  }
}

}  // namespace
}  // namespace natbpf

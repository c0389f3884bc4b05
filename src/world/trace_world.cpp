#include "world/trace_world.h"

#include <net/if.h>

#include <algorithm>
#include <set>
#include <tuple>
#include <fstream>
#include <iostream>

#include "probe/drop_reasons.h"
#include "sources/legacy_tables.h"
#include "sources/sock_diag.h"
#include "util/runtime.h"

namespace natbpf {
namespace {

bool has_legacy_steps(const Journey& j) {
  return std::any_of(j.steps.begin(), j.steps.end(), [](const Step& s) { return s.origin == Origin::Nflog; });
}

}  // namespace

Result<LiveTraceWorld> LiveTraceWorld::create(RecordingWriter* recorder) {
  if (auto gen = nft_generation(); !gen)
    return Error{"cannot read the nftables ruleset: " + gen.error().message, "is nf_tables available?"};
  LiveTraceWorld w(recorder);
  w.kallsyms_ = std::async(std::launch::async, [] { return std::make_shared<const Kallsyms>(); }).share();
  w.drop_reasons_ = load_drop_reasons();
  return w;
}

// `list ruleset` or `list chain ...` with handles, stateless and terse (the
// elements of named sets neither fetched nor listed: 20000 kube-proxy rules
// in nft, nft -a -s list ruleset 1.09 -> 0.95 s, peak 72 -> 64 MB). The
// context, and the cache libnftables filled, are freed before the text is
// parsed, so that the parse reuses that memory.
Result<std::string> LiveTraceWorld::list_nft(const std::string& command) {
  auto nft = NftContext::create(true, /*terse=*/true);
  if (!nft) return nft.error();
  return nft->run(command);
}

// The snapshot: nftables (the base chains; other chains, and rules, listed when a
// story needs them; or, with `whole` or a table of many sets, every rule and
// the iptables-nft syntax of its xtables tables) and the legacy tables of
// `families`, those unchanged since `copies` not saved again. Touches no
// member: runs on the loop or a worker, with a libnftables context of its
// own (one is not shared between threads).
Result<LiveTraceWorld::Pending> LiveTraceWorld::read_all(const std::vector<std::string>& families,
                                                         LegacyCopies copies, bool whole) {
  Pending p;
  // The generation first: a change while the ruleset is listed is then
  // caught at the next packet.
  auto gen = nft_generation();
  p.gen = gen ? *gen : 0;
  p.whole = whole;
  auto text = whole ? list_nft("list ruleset") : nft_chain_listing();
  if (!text) return Error{"cannot read the nftables ruleset: " + text.error().message, "is nf_tables available?"};
  p.texts.nft = std::move(*text);
  Ruleset parsed = Ruleset::parse(p.texts.nft);
  for (auto [family, save] : {std::pair{"ip", "iptables-nft-save"}, std::pair{"ip6", "ip6tables-nft-save"}})
    if (whole && parsed.has_xtables_tables(family)) p.texts.iptables_nft[family] = run_program({save}).second;
  if (auto read = read_legacy(families, copies)) copies = std::move(read->copies);
  p.copies = std::move(copies);
  p.ruleset = p.texts.build(std::move(parsed));
  add_legacy_chains(p.ruleset, p.copies);
  return p;
}

Status LiveTraceWorld::refresh_ruleset(bool whole) {
  settle();
  auto p = read_all(legacy_families_ ? legacy_families_() : std::vector<std::string>{}, legacy_, whole);
  first_read_done_ = true;
  if (!p) return p.error();
  install(std::move(*p));
  record_texts();
  return Ok{};
}

void LiveTraceWorld::start_reading() {
  if (recorder_) {
    // A recording holds the ruleset before any event it explains.
    (void)refresh_ruleset();
    return;
  }
  settle();
  start_read(false);
}

void LiveTraceWorld::start_read(bool whole) {
  auto families = legacy_families_ ? legacy_families_() : std::vector<std::string>{};
  pending_ = std::async(std::launch::async, [families, copies = legacy_, whole]() -> Result<Pending> {
    return read_all(families, copies, whole);
  });
}

bool LiveTraceWorld::ready() const {
  auto done = [](const auto& f) { return !f.valid() || f.wait_for(std::chrono::seconds(0)) == std::future_status::ready; };
  return done(pending_) && done(chains_pending_) && done(legacy_pending_);
}

void LiveTraceWorld::poll() {
  if (ready()) settle();
}

// Waits for the background reads, if any run, and installs them. A failed
// one leaves the snapshot as it was (empty at start: stories then name
// chains without their rules), as a failed refresh always did.
void LiveTraceWorld::settle() {
  if (pending_.valid()) {
    auto p = pending_.get();
    first_read_done_ = true;
    if (p) install(std::move(*p));
    else std::cerr << "natbpf: " << p.error().to_string() << "\n";
  }
  if (chains_pending_.valid()) {
    // A chain that could not be listed (deleted meanwhile, a name nft
    // cannot take): prepare() reads every rule instead, as the loop did.
    if (auto listings = chains_pending_.get()) install_chains(std::move(*listings));
    else chains_failed_ = true;
  }
  if (legacy_pending_.valid()) install_legacy(legacy_pending_.get());
}

// Starts on a worker what telling j needs and the snapshot lacks: a new
// snapshot when the nftables generation moved, the rules of the chains j
// crossed, every rule when one j names is still missing, the iptables-legacy
// tables whose shape changed when j has TRACE lines. True when nothing
// is left to read: j can be told now, and ensure_rules_known reads nothing
// more. Each read is started at most once per journey, so that a node
// whose rules keep changing does not hold a story forever. A recording reads
// at once, in ensure_rules_known (its records then follow the story's flush).
bool LiveTraceWorld::prepare(const Journey& j) {
  if (recorder_) return true;
  if (!ready()) return false;
  settle();
  if (JourneyId id{j.first_ns, j.trace_id}; id != preparing_) {
    preparing_ = id;
    prepared_ = {};
  }
  PrepareSteps& p = prepared_;
  if (!p.generation) {
    p.generation = true;
    if (generation_moved()) {
      start_read(false);
      return false;
    }
  }
  if (!p.chains) {
    p.chains = true;
    auto wanted = chains_to_read(j);
    if (!wanted) {
      p.whole = true;
      start_read(true);
      return false;
    }
    if (!wanted->empty()) {
      chains_pending_ = std::async(std::launch::async, [wanted = std::move(*wanted)] { return read_chains(wanted); });
      return false;
    }
  }
  if (!p.whole && !whole_ && (chains_failed_ || rule_missing(j))) {
    chains_failed_ = false;
    p.whole = true;
    start_read(true);
    return false;
  }
  // iptables-legacy numbers rules by position: a table whose shape changed
  // is saved again before the story is told.
  if (!p.legacy) {
    p.legacy = true;
    auto plan = legacy_families_ && has_legacy_steps(j) ? check_legacy(legacy_families_(), legacy_) : std::nullopt;
    if (plan && plan->saves()) {
      legacy_pending_ =
          std::async(std::launch::async, [plan = std::move(*plan)]() mutable { return save_legacy(std::move(plan)); });
      return false;
    }
    if (plan) install_legacy(save_legacy(std::move(*plan)));  // a table went: nothing to save
  }
  p.done = true;
  return true;
}

bool LiveTraceWorld::generation_moved() {
  auto g = nft_generation();
  if (!g || *g == ruleset_gen_) return false;
  if (own_changes_ && own_changes_(ruleset_gen_) == *g) {
    ruleset_gen_ = *g;
    return false;
  }
  return true;
}

void LiveTraceWorld::install(Pending p) {
  ruleset_gen_ = p.gen;
  whole_ = p.whole;
  listed_.clear();
  legacy_ = std::move(p.copies);
  texts_ = std::move(p.texts);
  ruleset_ = std::move(p.ruleset);
}

void LiveTraceWorld::rebuild() {
  ruleset_ = texts_.build();
  add_legacy_chains(ruleset_, legacy_);
  record_texts();
}

// The texts the snapshot is built from, for the recording: the legacy
// tables' saves are held once, in their copies (100000 kube-proxy rules:
// 12 MB), and joined per family only here.
void LiveTraceWorld::record_texts() const {
  if (!recorder_) return;
  nlohmann::json j = texts_.to_json();
  j["iptables_legacy"] = legacy_texts(legacy_);
  recorder_->write(j);
}

void LiveTraceWorld::install_legacy(LegacyRead read) {
  legacy_ = std::move(read.copies);
  if (read.changed) rebuild();
}

// Which iptables-legacy tables to save again: those whose shape changed
// (see sources/legacy_tables.h) or whose copy is older than
// kLegacyMaxAgeNs. Asks only the shapes (getsockopt, cheap enough for every
// story, on the loop). nullopt when no table is to be saved and none came
// or went. The shape is asked before the table is saved, so a change
// meanwhile is caught at the next check. Touches no member.
std::optional<LiveTraceWorld::LegacyPlan> LiveTraceWorld::check_legacy(const std::vector<std::string>& families,
                                                                       const LegacyCopies& copies) {
  constexpr uint64_t kLegacyMaxAgeNs = 30'000'000'000ULL;
  LegacyPlan plan{families, {}, false};
  for (const auto& family : families) {
    auto known = copies.find(family);
    auto names = legacy_table_names(family);
    if (known == copies.end() || known->second.size() != names.size()) plan.changed = true;
    for (const auto& name : names) {
      LegacyPlan::Table t{family, name, legacy_table_info(family, name), std::nullopt, true};
      if (known != copies.end())
        for (const auto& [table, copy] : known->second)
          if (table == t.name) t.old = copy;
      // Without the shape (no answer to getsockopt), once a second as before.
      uint64_t max_age = t.info ? kLegacyMaxAgeNs : 1'000'000'000ULL;
      t.save = !t.old || t.old->info != t.info || monotonic_ns() - t.old->read_ns >= max_age;
      plan.tables.push_back(std::move(t));
    }
  }
  if (!plan.changed && !plan.saves()) return std::nullopt;
  return plan;
}

// The copies after the plan: its tables saved (iptables-legacy-save: about
// 0.1 s for 100000 rules, so on a worker when there are any), the others
// kept. Touches no member.
LiveTraceWorld::LegacyRead LiveTraceWorld::save_legacy(LegacyPlan plan) {
  LegacyRead out;
  out.changed = plan.changed;
  for (const auto& family : plan.families) out.copies[family];  // a family without tables is listed, empty
  for (auto& t : plan.tables) {
    LegacyCopy copy;
    if (t.save) {
      const char* save = t.family == "ip" ? "iptables-legacy-save" : "ip6tables-legacy-save";
      copy = LegacyCopy{t.info, monotonic_ns(),
                        std::make_shared<const std::string>(run_program({save, "-t", t.name}).second)};
      if (!t.old || *copy.text != *t.old->text) out.changed = true;
    } else {
      copy = std::move(*t.old);
    }
    out.copies[t.family].emplace_back(t.name, std::move(copy));
  }
  return out;
}

std::optional<LiveTraceWorld::LegacyRead> LiveTraceWorld::read_legacy(const std::vector<std::string>& families,
                                                                      const LegacyCopies& copies) {
  auto plan = check_legacy(families, copies);
  if (!plan) return std::nullopt;
  return save_legacy(std::move(*plan));
}

// As RulesetTexts::build adds the legacy saves: a table at a time.
void LiveTraceWorld::add_legacy_chains(Ruleset& ruleset, const LegacyCopies& copies) {
  for (const auto& [family, tables] : copies)
    for (const auto& [name, copy] : tables) ruleset.add_legacy_save(copy.text, family);
}

std::map<std::string, std::string> LiveTraceWorld::legacy_texts(const LegacyCopies& copies) {
  std::map<std::string, std::string> texts;
  for (const auto& [family, tables] : copies) {
    std::string& text = texts[family];
    for (const auto& [name, copy] : tables) text += *copy.text;
  }
  return texts;
}

// The snapshot is stale when the nftables generation moved (a rule added,
// deleted or replaced anywhere, also in chains this packet only passed:
// their near misses would be wrong) or a traced rule is not in it; then the
// chains are listed again, and the rules of those this journey crossed.
// iptables-legacy has no generation and numbers its rules by position:
// while legacy steps are traced its tables' shapes are checked per story.
// Without prepare() (a recording, or the final flush), on the loop.
void LiveTraceWorld::ensure_rules_known(const Journey& j) {
  settle();
  if (prepared_.done && preparing_ == JourneyId{j.first_ns, j.trace_id}) return;  // prepare() read it all
  if (generation_moved()) (void)refresh_ruleset(false);
  if (!list_chains_of(j)) (void)refresh_ruleset(true);
  // A rule the listing lacks: a change between the generation asked and the
  // listing (or a chain that cannot be listed alone).
  if (!whole_ && rule_missing(j)) {
    (void)refresh_ruleset(true);
    return;
  }
  if (!has_legacy_steps(j) || !legacy_families_) return;
  if (auto read = read_legacy(legacy_families_(), legacy_)) install_legacy(std::move(*read));
}

bool LiveTraceWorld::rule_missing(const Journey& j) const {
  for (const auto& s : j.steps)
    if (s.origin != Origin::Nflog && s.handle && !ruleset_.rule(family_name(s.family), s.table, s.chain, *s.handle))
      return true;
  return false;
}

std::optional<bool> LiveTraceWorld::set_has(const std::string& family, const std::string& table,
                                            const std::string& set, const std::string& key) {
  std::optional<bool> has;
  if (auto f = family_number(family)) has = nft_set_has(*f, table, set, key);
  if (recorder_)
    recorder_->write({{"t", "set"}, {"family", family}, {"table", table}, {"set", set}, {"key", key},
                      {"has", has ? nlohmann::json(*has) : nlohmann::json(nullptr)}});
  return has;
}

std::string LiveTraceWorld::ifname(uint32_t index) {
  char buf[IF_NAMESIZE] = {};
  std::string name = index && if_indextoname(index, buf) ? buf : "if" + std::to_string(index);
  if (recorder_) recorder_->write({{"t", "ifname"}, {"index", index}, {"name", name}});
  return name;
}

// "net.netfilter.nf_conntrack_tcp_loose" of natbpf's (the traced) namespace.
std::optional<std::string> LiveTraceWorld::sysctl(const std::string& name) {
  std::optional<std::string> value;
  if (name.find("..") == std::string::npos) {
    std::string path = "/proc/sys/" + name;
    std::replace(path.begin() + 10, path.end(), '.', '/');
    std::ifstream in(path);
    std::string v;
    if (in && std::getline(in, v)) value = v;
  }
  if (recorder_)
    recorder_->write({{"t", "sysctl"}, {"name", name}, {"value", value ? nlohmann::json(*value) : nlohmann::json()}});
  return value;
}

std::vector<Listener> LiveTraceWorld::listeners(uint8_t proto, uint16_t port) {
  auto found = listening_sockets(proto, port);
  if (recorder_) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& l : found) list.push_back({{"address", l.address}, {"pid", l.pid}, {"comm", l.comm}});
    recorder_->write({{"t", "listeners"}, {"proto", proto}, {"port", port}, {"sockets", list}});
  }
  return found;
}

StoryWorld LiveTraceWorld::story_world() {
  StoryWorld w;
  w.ready = [this] { return ready(); };
  w.prepare = [this](const Journey& j) { return prepare(j); };
  w.before_explain = [this](const Journey& j) { ensure_rules_known(j); };
  w.ruleset = [this]() -> const Ruleset& { return ruleset(); };
  w.set_has = [this](const std::string& f, const std::string& t, const std::string& s, const std::string& k) {
    return set_has(f, t, s, k);
  };
  w.symbol = [this](uint64_t a) {
    std::string name = kallsyms_.get()->resolve(a);
    if (recorder_) recorder_->write({{"t", "symbol"}, {"addr", a}, {"name", name}});
    return name;
  };
  w.drop_reason = [this](uint32_t r) { return drop_reason_name(drop_reasons_, r); };
  w.ifname = [this](uint32_t index) { return ifname(index); };
  w.sysctl = [this](const std::string& name) { return sysctl(name); };
  w.listeners = [this](uint8_t proto, uint16_t port) { return listeners(proto, port); };
  return w;
}

}  // namespace natbpf

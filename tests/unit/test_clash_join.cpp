// The clash join with a fake world and events built in the test: which
// evidence yields a report, which does not, and that a recorded run replays
// to the same reports through the recorded world.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "temp_file.h"
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "journey/clash_join.h"
#include "output/clash_render.h"
#include "world/recorded_world.h"
#include "world/replay.h"

using namespace natbpf;

namespace {

constexpr uint64_t kHookSlow = 0xffffffff81000000ULL, kMs = 1'000'000ULL;
constexpr uint32_t kNetns = 4026531840U;

Tuple tcp(const char* s, uint16_t sp, const char* d, uint16_t dp) {
  return Tuple{*Addr::parse(s), *Addr::parse(d), sp, dp, 6};
}

// Seed 004 as the kernel shows it: SNAT of every connection to 127.0.0.1:8080
// onto 127.0.0.1:40000, the first connection established.
class FakeWorld : public World {
 public:
  uint32_t insert_failed = 0;  // what ct_stats reports for cpu 0
  uint64_t rejected = 0;       // drops the kernel filter rejected (SourceCounts)
  uint32_t drop = 0;
  uint32_t chaintoolong = 0, chaintoolong_cpu = 0;  // what ct_stats reports, and on which of cpus 0 and 1
  std::optional<CtNetlinkEntry> later;               // an entry holding some loser's original tuple now
  std::vector<std::string> asked;

  CtNetlinkEntry winner() const {
    CtNetlinkEntry e;
    e.ct.orig = tcp("127.0.0.1", 38484, "127.0.0.1", 8080);
    e.ct.reply = tcp("127.0.0.1", 8080, "127.0.0.1", 40000);
    e.ct.status = ips::kConfirmed | ips::kAssured | ips::kSeenReply | ips::kSrcNat | ips::kSrcNatDone;
    e.ct.netns = kNetns;
    e.tcp_state = 3;
    return e;
  }

  uint32_t own_netns() override { return kNetns; }
  std::string symbol(uint64_t addr) override { return addr == kHookSlow ? "nf_hook_slow+0x7d" : "nft_do_chain+0x3e8"; }
  std::string drop_reason(uint32_t) override { return "NETFILTER_DROP"; }
  uint64_t realtime_ns() override { return 0; }
  SourceCounts source_counts() override { return {0, 0, rejected}; }
  std::optional<std::vector<CtCpuStats>> ct_stats() override {
    CtCpuStats c;
    c.cpu = 0;
    c.insert_failed = insert_failed;
    c.drop = drop;
    c.clash_resolve = 0;
    c.chaintoolong = chaintoolong_cpu == 0 ? chaintoolong : 0;
    CtCpuStats c1;
    c1.cpu = 1;
    c1.insert_failed = c1.drop = c1.clash_resolve = 0;
    c1.chaintoolong = chaintoolong_cpu == 1 ? chaintoolong : 0;
    return std::vector<CtCpuStats>{c, c1};
  }
  std::optional<CtNetlinkEntry> ct_find(uint32_t, const Tuple& t, TupleDir dir) override {
    asked.push_back("ct_find");
    if (dir == TupleDir::Reply && t == winner().ct.reply) return winner();
    if (later && dir == TupleDir::Original && t == later->ct.orig) return later;
    return std::nullopt;
  }
  RangeUsage ct_range_usage(uint32_t, const RangeQuery& q) override {
    asked.push_back("ct_range_usage");
    return {count_range_usage({winner()}, q), "1 tuple lookups"};
  }
  TableSize table_size(uint32_t) override { return {1, 262144}; }
  std::vector<NatRule> nat_rules(uint32_t) override {
    asked.push_back("nat_rules");
    NatRule r;
    r.backend = "iptables-nft";
    r.family = 2;
    r.kind = "snat";
    r.text = "iptables -t nat -A POSTROUTING -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j SNAT --to-source 127.0.0.1:40000";
    r.where = "iptables -t nat, chain POSTROUTING, rule 1";
    r.proto = 6;
    r.dport = 8080;
    r.min_addr = r.max_addr = *Addr::parse("127.0.0.1");
    r.min_port = r.max_port = 40000;
    return {r};
  }
  // natbpf's own namespace is listed first, then again under its ip netns name.
  std::vector<NamedNetns> namespaces() override {
    asked.push_back("namespaces");
    return {{"(natbpf's namespace)", "/proc/self/ns/net", kNetns}, {"seed004", "/run/netns/seed004", kNetns}};
  }
  NetnsSnapshot snapshot(const NamedNetns&) override { return {}; }
};

// The SYN of the second connection, freed at nf_hook_slow with its
// unconfirmed, SNATed entry.
SkbDropEvent second_syn() {
  SkbDropEvent d;
  d.ts_ns = 5 * kMs;
  d.cpu = 0;
  d.skb = 0xffff888001;
  d.location = kHookSlow;
  d.reason = 12;
  CtEntry ct;
  ct.ptr = 0xffff888100;
  ct.orig = tcp("127.0.0.1", 38486, "127.0.0.1", 8080);
  ct.reply = tcp("127.0.0.1", 8080, "127.0.0.1", 40000);
  ct.status = ips::kSrcNat | ips::kSrcNatDone;
  ct.netns = kNetns;
  d.ct = ct;
  d.pkt.netns = kNetns;
  return d;
}

struct Printed {
  std::vector<ClashReport> reports;
  std::vector<ClashSummary> summaries;
  std::string json;  // every line, as the live command prints it
  ClashOutput output() {
    return {[this](const ClashReport& r, uint64_t) {
              reports.push_back(r);
              json += clash_to_json(r).dump() + "\n";
            },
            [this](const ClashSummary& s, bool final) {
              summaries.push_back(s);
              json += summary_to_json(s, final).dump() + "\n";
            }};
  }
};

ClashJoinOptions tracepoint_options() { return {0, 10'000 * kMs, {"kfree_skb"}}; }

// The run of the seed 004 drop: start, the drop, the counter rising, a tick
// after the join's wait, the final tick.
void run_seed004(ClashJoin& join, FakeWorld& world, bool insert_failed_rises) {
  ASSERT_TRUE(join.start(1 * kMs));
  join.on_event(second_syn(), 6 * kMs);
  if (insert_failed_rises) world.insert_failed = 1;
  world.drop = 1;
  join.tick(50 * kMs);
  join.tick(60 * kMs, /*final=*/true);
}

}  // namespace

TEST(ClashJoin, ConfirmDropCorroboratedByInsertFailedIsAReport) {
  FakeWorld world;
  Printed out;
  ClashJoin join(tracepoint_options(), world, out.output());
  run_seed004(join, world, /*insert_failed_rises=*/true);
  ASSERT_EQ(out.reports.size(), 1u);
  const ClashReport& r = out.reports[0];
  EXPECT_EQ(r.cause, ClashCause::RangeExhausted);
  EXPECT_EQ(r.facts.outcome, ClashOutcome::Dropped);
  EXPECT_TRUE(r.facts.counter_confirms);
  ASSERT_TRUE(r.facts.winner);
  EXPECT_EQ(r.facts.winner->ct.orig.sport, 38484);
  EXPECT_NE(r.facts.seen_by.find("insert_failed rose on cpu 0"), std::string::npos);
  ASSERT_TRUE(r.facts.range_used);
  EXPECT_EQ(*r.facts.range_used, 1u);
  EXPECT_EQ(r.facts.netns_name, "seed004");  // named as drops names it, the inode beside it
  auto j = clash_to_json(r);
  EXPECT_EQ(j["netns"], "seed004");
  EXPECT_EQ(j["netns_inode"], kNetns);
  ASSERT_EQ(out.summaries.size(), 1u);  // the final one only: the interval is 10 s
  EXPECT_EQ(out.summaries[0].dropped, 1u);
  EXPECT_EQ(out.summaries[0].unmatched_drops, 0u);
}

// A filter rule dropping the first packet of a new connection also frees it
// at nf_hook_slow with an unconfirmed entry: without insert_failed on its
// CPU it is not a clash, and no lookup is spent on it.
TEST(ClashJoin, UnconfirmedDropWithoutInsertFailedIsNotAClash) {
  FakeWorld world;
  Printed out;
  ClashJoin join(tracepoint_options(), world, out.output());
  run_seed004(join, world, /*insert_failed_rises=*/false);
  EXPECT_TRUE(out.reports.empty());
  ASSERT_EQ(out.summaries.size(), 1u);
  EXPECT_EQ(out.summaries[0].unmatched_drops, 1u);
  EXPECT_TRUE(world.asked.empty());
}

// Drops the kernel rejected before any record (no insert_failed rose) are
// counted with the ones user space found not to be conntrack's, once each.
TEST(ClashJoin, DropsRejectedInTheKernelAreUnmatchedInTheSummaries) {
  FakeWorld world;
  Printed out;
  ClashJoin join({0, 20 * kMs, {"kfree_skb"}}, world, out.output());
  ASSERT_TRUE(join.start(1 * kMs));
  world.rejected = 5;
  join.tick(30 * kMs);
  join.on_event(second_syn(), 29 * kMs);  // one let through, no insert_failed either
  world.rejected = 7;
  join.tick(60 * kMs);
  join.tick(70 * kMs, /*final=*/true);
  EXPECT_TRUE(out.reports.empty());
  ASSERT_EQ(out.summaries.size(), 3u);
  EXPECT_EQ(out.summaries[0].unmatched_drops, 5u);
  EXPECT_EQ(out.summaries[1].unmatched_drops, 3u);
  EXPECT_EQ(out.summaries[2].unmatched_drops, 8u);  // the final one: the whole run
}

TEST(ClashJoin, ConfirmedEntriesAndOtherLocationsAreIgnored) {
  FakeWorld world;
  Printed out;
  ClashJoin join(tracepoint_options(), world, out.output());
  ASSERT_TRUE(join.start(1 * kMs));
  SkbDropEvent confirmed = second_syn();
  confirmed.ct->status |= ips::kConfirmed;
  join.on_event(confirmed, 6 * kMs);
  SkbDropEvent elsewhere = second_syn();
  elsewhere.skb++;
  elsewhere.location = 1;  // nft_do_chain
  join.on_event(elsewhere, 6 * kMs);
  world.insert_failed = 2;
  join.tick(60 * kMs, /*final=*/true);
  EXPECT_TRUE(out.reports.empty());
  EXPECT_EQ(out.summaries.at(0).unmatched_drops, 0u);
}

// A namespace the world does not list (not under ip netns) reads
// "netns:<inode>", as in drops; the world is asked once per inode.
TEST(ClashJoin, UnnamedNamespaceIsNamedByInode) {
  FakeWorld world;
  Printed out;
  ClashJoin join(tracepoint_options(), world, out.output());
  ASSERT_TRUE(join.start(1 * kMs));
  for (uint64_t skb : {1, 2}) {
    SkbDropEvent d = second_syn();
    d.skb += skb;
    d.ts_ns += skb;
    d.ct->ptr += skb;
    d.ct->orig.sport += uint16_t(skb);
    d.ct->netns = d.pkt.netns = 77;
    join.on_event(d, 6 * kMs);
  }
  world.insert_failed = 2;
  join.tick(60 * kMs, /*final=*/true);
  ASSERT_EQ(out.reports.size(), 2u);
  EXPECT_EQ(out.reports[0].facts.netns_name, "netns:77");
  EXPECT_EQ(out.reports[1].facts.netns_name, "netns:77");
  EXPECT_EQ(std::count(world.asked.begin(), world.asked.end(), "namespaces"), 1);
}

// Recorded through RecordingWorld, replayed through RecordedWorld: the same
// lines, and every question answered.
TEST(ClashJoin, RecordedRunReplaysToTheSameOutput) {
  std::string path = temp_path();
  FakeWorld live;
  Printed live_out;
  {
    auto writer = RecordingWriter::create(path, {{"command", "clash"}});
    ASSERT_TRUE(writer);
    writer->write({{"t", "plan"}, {"summary", "test"}, {"hooks", {"kfree_skb"}}, {"own_netns", kNetns}});
    RecordingWorld recording(live, *writer);
    ClashJoin join(tracepoint_options(), recording, live_out.output());
    // What the job writes around the join's calls.
    writer->start(1 * kMs);
    ASSERT_TRUE(join.start(1 * kMs));
    join.on_event(second_syn(), 6 * kMs);
    writer->raw("bpf", std::vector<uint8_t>{}, 6 * kMs);  // a record the replay cannot decode: counted, not fatal
    live.insert_failed = 1;
    writer->tick(50 * kMs, false);
    join.tick(50 * kMs);
    writer->tick(60 * kMs, true);
    join.tick(60 * kMs, true);
  }
  ASSERT_EQ(live_out.reports.size(), 1u);

  // The replay feeds the same event where the recording has its raw record.
  auto reader = RecordingReader::open(path);
  ASSERT_TRUE(reader);
  auto plan = read_plan_record(*reader);
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->own_netns, kNetns);
  RecordedWorld world(plan->own_netns);
  Printed replayed;
  ClashJoin join({0, 10'000 * kMs, plan->hooks}, world, replayed.output());
  ReplayHandlers h;
  h.start = [&](uint64_t ns) { ASSERT_TRUE(join.start(ns)); };
  h.raw = [&](const std::string&, std::span<const uint8_t>, uint64_t ns) { join.on_event(second_syn(), ns); };
  h.tick = [&](uint64_t ns, bool final) { join.tick(ns, final); };
  auto counts = replay(*reader, world, h);
  ASSERT_TRUE(counts);
  EXPECT_EQ(world.mismatches(), 0u);
  EXPECT_EQ(replayed.json, live_out.json);
  EXPECT_NE(replayed.json.find("\"netns\":\"seed004\""), std::string::npos);  // the namespaces were recorded
  std::remove(path.c_str());
}

TEST(RecordedWorld, AnswersOfAnotherKeyOrShapeAreMismatches) {
  RecordedWorld world(1);
  EXPECT_TRUE(world.add_answer({{"t", "answer"}, {"q", "table_size"}, {"key", 7}, {"value", {{"count", 3}, {"max", 4}}}}));
  EXPECT_TRUE(world.add_answer({{"t", "answer"}, {"q", "table_size"}, {"key", 8}, {"value", "not a size"}}));
  EXPECT_FALSE(world.add_answer({{"t", "answer"}, {"q", 5}, {"value", 1}}));
  EXPECT_FALSE(world.add_answer({{"t", "answer"}, {"q", "symbol"}, {"key", "x"}, {"value", "f"}}));
  TableSize s = world.table_size(7);
  EXPECT_EQ(s.count, 3u);
  EXPECT_EQ(s.max, 4u);
  EXPECT_EQ(world.mismatches(), 0u);
  EXPECT_FALSE(world.table_size(8).count);  // malformed value
  EXPECT_FALSE(world.table_size(9).count);  // nothing recorded
  EXPECT_EQ(world.mismatches(), 2u);
  EXPECT_EQ(world.symbol(0x10), "0x10");
  EXPECT_EQ(world.drop_reason(3), "reason 3");
}

// Where nf_ct_resolve_clash is hooked, a confirm drop it did not see was no
// clash: an entry holding the loser's tuple by the time natbpf looks (a
// later flow that reused the source port) is not blamed as its winner, and
// chaintoolong that rose on another CPU than the record's still explains it.
TEST(ClashJoin, ConfirmDropWithoutAClashIsNeverASameTupleRace) {
  FakeWorld world;
  Printed out;
  ClashJoin join({0, 10'000 * kMs, {"kfree_skb", "__nf_conntrack_confirm", "nf_ct_resolve_clash"}}, world, out.output());
  ASSERT_TRUE(join.start(1 * kMs));
  CtConfirmEvent c;
  c.ts_ns = 5 * kMs;
  c.cpu = 1;
  c.skb = 0xffff888002;
  c.loser.ptr = 0xffff888200;
  c.loser.orig = Tuple{*Addr::parse("127.0.0.1"), *Addr::parse("127.0.0.1"), 40001, 9, 17};
  c.loser.reply = Tuple{*Addr::parse("127.0.0.1"), *Addr::parse("127.0.0.1"), 9, 40001, 17};
  c.loser.netns = kNetns;
  c.accepted = false;
  join.on_event(c, 6 * kMs);
  CtNetlinkEntry later;
  later.ct = c.loser;
  later.ct.status = ips::kConfirmed;
  world.later = later;
  world.chaintoolong = 1;
  world.chaintoolong_cpu = 0;  // the record says cpu 1
  world.insert_failed = 1;
  join.tick(50 * kMs);
  join.tick(60 * kMs, /*final=*/true);
  ASSERT_EQ(out.reports.size(), 1u);
  const ClashReport& r = out.reports[0];
  EXPECT_EQ(r.cause, ClashCause::ChainTooLong);
  EXPECT_FALSE(r.facts.winner);
  EXPECT_THAT(r.evidence, testing::Contains(testing::HasSubstr("chaintoolong rose on cpu 0 (the record's cpu 1")));
  EXPECT_TRUE(r.facts.confirm_without_clash);
  EXPECT_EQ(std::count(world.asked.begin(), world.asked.end(), "ct_find"), 0);
}

namespace {

ClashJoinOptions hooked_options() { return {0, 10'000 * kMs, {"kfree_skb", "__nf_conntrack_confirm", "nf_ct_resolve_clash"}}; }

// __nf_conntrack_confirm returning NF_DROP for a packet on skb 0xffff888002.
CtConfirmEvent confirm_drop(uint64_t ts, uint64_t ptr, uint16_t sport) {
  CtConfirmEvent c;
  c.ts_ns = ts;
  c.skb = 0xffff888002;
  c.loser.ptr = ptr;
  c.loser.orig = tcp("127.0.0.1", sport, "127.0.0.1", 8080);
  c.loser.reply = tcp("127.0.0.1", 8080, "127.0.0.1", sport);
  c.loser.netns = kNetns;
  return c;
}

}  // namespace

// A freed skb's address is soon reused. Packet A's confirm drop and packet
// B's resolved clash on the same skb address are two reports: B's clash
// record names another losing entry, so it does not join A's slot (before,
// A was reported with B's clash, and B from its confirm record alone).
TEST(ClashJoin, ReusedSkbAddressWithAnotherEntryIsAnotherPacket) {
  FakeWorld world;
  Printed out;
  ClashJoin join(hooked_options(), world, out.output());
  ASSERT_TRUE(join.start(1 * kMs));
  CtConfirmEvent a = confirm_drop(5 * kMs, 0xffff888200, 40001);
  join.on_event(a, 6 * kMs);
  CtClashEvent b;
  b.ts_ns = 8 * kMs;
  b.skb = a.skb;
  b.loser = a.loser;
  b.loser.ptr = 0xffff888300;
  b.loser.orig.sport = b.loser.reply.dport = 40002;
  b.winner = world.winner().ct;
  b.resolved = true;
  join.on_event(b, 9 * kMs);
  CtConfirmEvent bc;
  bc.ts_ns = 8 * kMs + 1000;
  bc.skb = a.skb;
  bc.loser = b.loser;
  bc.accepted = true;
  join.on_event(bc, 9 * kMs);
  world.chaintoolong = 1;
  world.insert_failed = 1;
  join.tick(50 * kMs);
  join.tick(600 * kMs, /*final=*/true);
  ASSERT_EQ(out.reports.size(), 2u);
  ASSERT_TRUE(out.reports[0].facts.loser && out.reports[1].facts.loser);
  EXPECT_EQ(out.reports[0].facts.loser->ptr, a.loser.ptr);
  EXPECT_EQ(out.reports[0].facts.outcome, ClashOutcome::Dropped);
  EXPECT_EQ(out.reports[0].cause, ClashCause::ChainTooLong);
  EXPECT_EQ(out.reports[1].facts.loser->ptr, b.loser.ptr);
  EXPECT_EQ(out.reports[1].facts.outcome, ClashOutcome::Resolved);
}

// Records of packets on one reused skb address, each naming its own losing
// entry: A's drop record, read after B's confirm record retired A's slot,
// goes back to A (it does not retire B, nor stand alone as an unmatched
// drop); C's confirm record, 1 ms after B was explained, is not taken for
// one of B's (another entry is another packet, however close in time).
TEST(ClashJoin, LateRecordsOfAReusedSkbAddressFindTheirOwnPacket) {
  FakeWorld world;
  Printed out;
  ClashJoin join(hooked_options(), world, out.output());
  ASSERT_TRUE(join.start(1 * kMs));
  CtConfirmEvent a = confirm_drop(5 * kMs, 0xffff888200, 40001), b = confirm_drop(8 * kMs, 0xffff888300, 40002);
  join.on_event(a, 6 * kMs);
  join.on_event(b, 9 * kMs);
  SkbDropEvent a_drop = second_syn();
  a_drop.ts_ns = a.ts_ns + 1000;
  a_drop.skb = a.skb;
  a_drop.ct = a.loser;
  join.on_event(a_drop, 9 * kMs);
  world.chaintoolong = world.insert_failed = 2;
  join.tick(50 * kMs);
  join.on_event(confirm_drop(9 * kMs, 0xffff888400, 40003), 55 * kMs);
  world.chaintoolong = world.insert_failed = 3;
  join.tick(600 * kMs, /*final=*/true);
  ASSERT_EQ(out.reports.size(), 3u);
  uint64_t ptrs[] = {a.loser.ptr, b.loser.ptr, 0xffff888400};
  for (size_t i = 0; i < 3; i++) {
    ASSERT_TRUE(out.reports[i].facts.loser) << i;
    EXPECT_EQ(out.reports[i].facts.loser->ptr, ptrs[i]) << i;
    EXPECT_EQ(out.reports[i].cause, ClashCause::ChainTooLong) << i;
  }
  ASSERT_FALSE(out.summaries.empty());
  EXPECT_EQ(out.summaries.back().unmatched_drops, 0u);
}

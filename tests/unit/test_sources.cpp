// The source lifecycle shared by trace, clash and drops, with fake sources.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "sources/source.h"

using namespace natbpf;

namespace {

struct Log {
  std::vector<std::string> calls;
};

class FakeSource : public Source {
 public:
  FakeSource(std::string name, Log& log) : name_(std::move(name)), log_(log) {}
  std::optional<std::string> why_not;
  std::optional<std::string> start_error;
  int fd_ = -1;
  uint64_t lost_ = 0, malformed_ = 0;

  std::string name() const override { return name_; }
  std::optional<std::string> cannot_run() override { return why_not; }
  Status start() override {
    log_.calls.push_back("start " + name_);
    if (start_error) return Error{*start_error, "a hint"};
    return Ok{};
  }
  void stop() override { log_.calls.push_back("stop " + name_); }
  int fd() const override { return fd_; }
  Status read() override {
    log_.calls.push_back("read " + name_);
    return Ok{};
  }
  uint64_t lost() const override { return lost_; }
  uint64_t malformed() const override { return malformed_; }

 private:
  std::string name_;
  Log& log_;
};

}  // namespace

TEST(Sources, OptionalSourceThatCannotRunIsSkippedWithItsReason) {
  Log log;
  Sources s;
  auto f = std::make_unique<FakeSource>("iptables-legacy TRACE", log);
  f->why_not = "iptables-legacy has no rules in this namespace";
  ASSERT_TRUE(s.add(std::move(f), false));
  ASSERT_EQ(s.skipped().size(), 1u);
  EXPECT_EQ(s.skipped()[0], "iptables-legacy TRACE: iptables-legacy has no rules in this namespace");
  EXPECT_TRUE(log.calls.empty()) << "a source that cannot run is never started";
  EXPECT_EQ(s.find("iptables-legacy TRACE"), nullptr);
}

TEST(Sources, RequiredSourceThatCannotRunIsAnError) {
  Log log;
  Sources s;
  auto f = std::make_unique<FakeSource>("bpf", log);
  f->why_not = "nothing to attach";
  auto st = s.add(std::move(f), true);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message, "bpf cannot run here: nothing to attach");
  EXPECT_NE(st.error().hint.find("natbpf probe"), std::string::npos);
}

TEST(Sources, FailedStartIsStoppedThenSkippedOrReturned) {
  Log log;
  Sources s;
  auto opt = std::make_unique<FakeSource>("optional", log);
  opt->start_error = "no NFLOG";
  ASSERT_TRUE(s.add(std::move(opt), false));
  EXPECT_EQ(s.skipped().back(), "optional: no NFLOG: a hint");  // the fix is named too
  auto req = std::make_unique<FakeSource>("required", log);
  req->start_error = "socket: EPERM";
  auto st = s.add(std::move(req), true);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message, "socket: EPERM");
  EXPECT_EQ(log.calls, (std::vector<std::string>{"start optional", "stop optional", "start required", "stop required"}));
}

TEST(Sources, RunningSourcesAreWatchedCountedAndStoppedLastFirst) {
  Log log;
  {
    Sources s;
    auto a = std::make_unique<FakeSource>("a", log);
    a->fd_ = 7;
    a->lost_ = 2;
    a->malformed_ = 1;
    auto b = std::make_unique<FakeSource>("b", log);  // no fd: read on ticks only
    b->lost_ = 3;
    ASSERT_TRUE(s.add(std::move(a), true));
    ASSERT_TRUE(s.add(std::move(b), false));
    auto w = s.watches();
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0].fd, 7);
    ASSERT_TRUE(w[0].on_readable());
    ASSERT_TRUE(s.read_all());
    EXPECT_EQ(s.lost(), 5u);
    EXPECT_EQ(s.malformed(), 1u);
    ASSERT_NE(s.find("b"), nullptr);
  }
  EXPECT_EQ(log.calls, (std::vector<std::string>{"start a", "start b", "read a", "read a", "read b", "stop b", "stop a"}));
}

TEST(Sources, ReadInRankOrderStoppedInReverseStartOrder) {
  Log log;
  {
    Sources s;
    auto bpf = std::make_unique<FakeSource>("bpf", log);
    bpf->fd_ = 3;
    auto nft = std::make_unique<FakeSource>("nftrace", log);
    nft->fd_ = 4;
    ASSERT_TRUE(s.add(std::move(bpf), false, 2));  // started first, read last
    ASSERT_TRUE(s.add(std::move(nft), true, 0));
    auto w = s.watches();
    ASSERT_EQ(w.size(), 2u);
    EXPECT_EQ(w[0].fd, 4);
    EXPECT_EQ(w[1].fd, 3);
    ASSERT_TRUE(s.read_all());
  }
  EXPECT_EQ(log.calls, (std::vector<std::string>{"start bpf", "start nftrace", "read nftrace", "read bpf",
                                                 "stop nftrace", "stop bpf"}));
}

#include "sources/sock_diag.h"

namespace {

// What a hold handed to its parser: each datagram's first byte and receive time.
struct Parsed {
  std::vector<std::pair<uint8_t, uint64_t>> got;
  HeldDatagrams::Parse parse() {
    return [this](std::span<const uint8_t> d, uint64_t ns) { got.emplace_back(d[0], ns); };
  }
};

TEST(HeldDatagrams, HeldUntilReadyThenParsedInTheOrderReceived) {
  bool ready = false;
  HeldDatagrams hold([&ready] { return ready; }, 1 << 20);
  Parsed p;
  for (uint8_t b : {1, 2, 3}) {
    std::vector<uint8_t> d(100, b);
    hold.hold(d, b * 10, p.parse());
  }
  EXPECT_TRUE(p.got.empty());
  hold.release(false, p.parse());
  EXPECT_TRUE(p.got.empty()) << "released before the rules were there";
  EXPECT_FALSE(hold.empty());
  ready = true;
  // One received now, with three still held, waits behind them.
  std::vector<uint8_t> d4(100, 4);
  hold.hold(d4, 40, p.parse());
  EXPECT_TRUE(p.got.empty()) << "a hold is parsed at its release, not when ready";
  hold.release(false, p.parse());
  EXPECT_EQ(p.got, (std::vector<std::pair<uint8_t, uint64_t>>{{1, 10}, {2, 20}, {3, 30}, {4, 40}}));
  EXPECT_TRUE(hold.empty());
  // Ready is not asked again once it said yes.
  ready = false;
  std::vector<uint8_t> d5(100, 5);
  hold.hold(d5, 50, p.parse());
  hold.release(false, p.parse());
  EXPECT_EQ(p.got.back(), (std::pair<uint8_t, uint64_t>{5, 50}));
}

TEST(HeldDatagrams, ForcedOrFullHoldIsParsedAtOnce) {
  HeldDatagrams hold([] { return false; }, 250);
  Parsed p;
  for (uint8_t b : {1, 2}) {
    std::vector<uint8_t> d(100, b);
    hold.hold(d, b, p.parse());
  }
  EXPECT_TRUE(p.got.empty());
  std::vector<uint8_t> d3(100, 3);
  hold.hold(d3, 3, p.parse());  // 300 bytes > 250: everything, in order
  EXPECT_EQ(p.got, (std::vector<std::pair<uint8_t, uint64_t>>{{1, 1}, {2, 2}, {3, 3}}));
  EXPECT_TRUE(hold.empty());
  std::vector<uint8_t> d4(100, 4);
  hold.hold(d4, 4, p.parse());
  EXPECT_EQ(p.got.size(), 3u);
  hold.release(true, p.parse());  // the final flush
  EXPECT_EQ(p.got.back(), (std::pair<uint8_t, uint64_t>{4, 4}));
}

// The other socket is read before any datagram received since its last
// read is parsed: at a release, and when a full hold is parsed mid-drain
// (the lines of 4 MB held were parsed before their packets' nftables trace
// messages were read).
TEST(HeldDatagrams, BeforeParseRunsOnceBeforeWhatCameSinceItsLastRun) {
  bool ready = false;
  HeldDatagrams hold([&ready] { return ready; }, 250);
  std::vector<std::string> order;
  hold.set_before_parse([&order] { order.push_back("read first"); });
  auto parse = [&order](std::span<const uint8_t> d, uint64_t) { order.push_back(std::to_string(d[0])); };
  std::vector<uint8_t> d1(100, 1), d2(100, 2), d3(100, 3), d4(100, 4);
  hold.hold(d1, 1, parse);
  hold.release(false, parse);
  EXPECT_TRUE(order.empty()) << "nothing parsed, nothing to read first";
  hold.hold(d2, 2, parse);
  hold.hold(d3, 3, parse);  // 300 bytes > 250: parsed now
  EXPECT_EQ(order, (std::vector<std::string>{"read first", "1", "2", "3"}));
  hold.release(true, parse);
  EXPECT_EQ(order.size(), 4u) << "read first again with nothing new";
  ready = true;
  hold.hold(d4, 4, parse);
  hold.release(false, parse);
  EXPECT_EQ(order, (std::vector<std::string>{"read first", "1", "2", "3", "read first", "4"}));
  // A datagram too big for any hold: read first, then parsed at once.
  std::vector<uint8_t> big(300, 5);
  hold.hold(big, 5, parse);
  EXPECT_EQ(order.back(), "5");
  EXPECT_EQ(order[order.size() - 2], "read first");
}

}  // namespace

namespace natbpf {
namespace {

TEST(ProcNetListeners, TcpListenAndUdpUnconnectedOnThePort) {
  const std::string tcp =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 00000000:CB20 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0\n"
      "   1: 0100007F:CB20 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0\n"
      "   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0\n";
  auto found = parse_proc_net(tcp, 2, 6, 52000);
  ASSERT_EQ(found.size(), 1u);  // the established one and another port are not listeners of 52000
  EXPECT_EQ(found[0].first.address, "0.0.0.0:52000");
  EXPECT_EQ(found[0].second, 4242u);
  const std::string tcp6 =
      "  sl  local_address                         remote_address                        st tx_queue rx_queue tr "
      "tm->when retrnsmt   uid  timeout inode\n"
      "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 "
      "00:00000000 00000000     0        0 777 1 0\n";
  auto v6 = parse_proc_net(tcp6, 10, 6, 8080);
  ASSERT_EQ(v6.size(), 1u);
  EXPECT_EQ(v6[0].first.address, "[::1]:8080");
  const std::string udp =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
      "  10: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 900 2 0 0\n"
      "  11: 0100007F:0035 0100007F:D431 07 00000000:00000000 00:00000000 00000000     0        0 901 2 0 0\n";
  auto u = parse_proc_net(udp, 2, 17, 53);
  ASSERT_EQ(u.size(), 1u);  // the connected socket does not receive from anyone
  EXPECT_EQ(u[0].second, 900u);
}

}  // namespace
}  // namespace natbpf

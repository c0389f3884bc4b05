// Counting a NAT range's usage without dumping the conntrack table: the size
// of a range (which decides lookups or a filtered dump), which reply tuples
// count, and the filtered dump request as the kernel parses it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <vector>

#include "sources/ct_lookup.h"
#include "world/codec.h"

namespace natbpf {
namespace {

Addr ip(const char* s) { return *Addr::parse(s); }

RangeQuery query(const char* lo, const char* hi, uint16_t pmin, uint16_t pmax) {
  return RangeQuery{6, ip("10.0.0.2"), 80, ip(lo), ip(hi), pmin, pmax};
}

TEST(CtRange, TuplesAreAddressesTimesPorts) {
  EXPECT_EQ(*query("10.1.0.1", "10.1.0.1", 40000, 40000).tuples(), 1u);
  EXPECT_EQ(*query("10.1.0.1", "10.1.0.4", 40000, 40009).tuples(), 40u);
  EXPECT_EQ(*query("10.1.0.255", "10.1.1.0", 1, 65535).tuples(), 2u * 65535);
  EXPECT_EQ(*query("10.1.0.2", "10.1.0.1", 1, 2).tuples(), 0u);  // empty address range
  EXPECT_EQ(*query("10.1.0.1", "10.1.0.1", 2, 1).tuples(), 0u);  // empty port range
  // Past 2^32 tuples, or IPv6 ranges differing above the low 32 bits: too many to look up.
  EXPECT_FALSE(query("0.0.0.0", "255.255.255.255", 1, 65535).tuples());
  RangeQuery v6{6, ip("fd00::2"), 80, ip("fd00::1:0:0"), ip("fd00::2:0:0"), 1, 1};
  EXPECT_FALSE(v6.tuples());
  v6.max_addr = ip("fd00::1:0:ff");
  EXPECT_EQ(*v6.tuples(), 256u);
  EXPECT_FALSE((RangeQuery{6, ip("10.0.0.2"), 80, ip("10.1.0.1"), ip("fd00::1"), 1, 1}).tuples());
}

TEST(CtRange, CountsReplyTuplesOfTheDestinationInTheRange) {
  RangeQuery q = query("10.1.0.1", "10.1.0.2", 40000, 40001);
  auto reply = [](const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t proto = 6) {
    return Tuple{ip(src), ip(dst), sport, dport, proto};
  };
  EXPECT_TRUE(q.counts(reply("10.0.0.2", 80, "10.1.0.1", 40000)));
  EXPECT_TRUE(q.counts(reply("10.0.0.2", 80, "10.1.0.2", 40001)));
  EXPECT_FALSE(q.counts(reply("10.0.0.2", 80, "10.1.0.3", 40000)));      // address outside
  EXPECT_FALSE(q.counts(reply("10.0.0.2", 80, "10.1.0.1", 40002)));      // port outside
  EXPECT_FALSE(q.counts(reply("10.0.0.3", 80, "10.1.0.1", 40000)));      // another server
  EXPECT_FALSE(q.counts(reply("10.0.0.2", 81, "10.1.0.1", 40000)));      // another port
  EXPECT_FALSE(q.counts(reply("10.0.0.2", 80, "10.1.0.1", 40000, 17)));  // another protocol
}

struct Parsed {
  uint8_t family = 0;
  uint16_t flags = 0;
  std::optional<uint32_t> reply_flags;
  bool has_reply_tuple = false;
};

Parsed parse_request(const nlmsghdr* nlh) {
  Parsed p;
  p.flags = nlh->nlmsg_flags;
  p.family = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh))->nfgen_family;
  mnl_attr_parse(nlh, sizeof(nfgenmsg), [](const nlattr* attr, void* data) {
    auto* q = static_cast<Parsed*>(data);
    if (mnl_attr_get_type(attr) == CTA_TUPLE_REPLY) q->has_reply_tuple = true;
    if (mnl_attr_get_type(attr) == CTA_FILTER)
      mnl_attr_parse_nested(attr, [](const nlattr* f, void* d) {
        if (mnl_attr_get_type(f) == CTA_FILTER_REPLY_FLAGS) static_cast<Parsed*>(d)->reply_flags = mnl_attr_get_u32(f);
        return MNL_CB_OK;
      }, q);
    return MNL_CB_OK;
  }, &p);
  return p;
}

TEST(CtRange, DumpIsFilteredOnTheReplySource) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  Parsed v4 = parse_request(build_ct_range_dump(buf.data(), query("10.1.0.1", "10.1.0.9", 1, 65535), 1));
  EXPECT_EQ(v4.family, AF_INET);
  EXPECT_TRUE(v4.flags & NLM_F_DUMP);
  EXPECT_TRUE(v4.has_reply_tuple);
  ASSERT_TRUE(v4.reply_flags);
  EXPECT_EQ(*v4.reply_flags, (1u << 0) | (1u << 3) | (1u << 4));  // CTA_FILTER_F_CTA_IP_SRC, PROTO_NUM, PROTO_SRC_PORT
  // IPv6: the address is checked here, not by 6.1's inverted ipv6_addr_cmp.
  RangeQuery v6q{6, ip("fd00::2"), 80, ip("fd00::1"), ip("fd00::ff"), 1, 65535};
  Parsed v6 = parse_request(build_ct_range_dump(buf.data(), v6q, 2));
  EXPECT_EQ(v6.family, AF_INET6);
  ASSERT_TRUE(v6.reply_flags);
  EXPECT_EQ(*v6.reply_flags, (1u << 3) | (1u << 4));
}

TEST(CtRange, AnswerRoundTripsThroughARecording) {
  RangeQuery q = query("10.1.0.1", "10.1.0.2", 40000, 40001);
  nlohmann::json j = q;
  RangeQuery back = j.get<RangeQuery>();
  EXPECT_EQ(back.max_addr, q.max_addr);
  EXPECT_EQ(back.max_port, 40001);
  RangeUsage u{3, "4 tuple lookups"};
  RangeUsage ub = nlohmann::json(u).get<RangeUsage>();
  EXPECT_EQ(*ub.used, 3u);
  EXPECT_EQ(ub.how, "4 tuple lookups");
  RangeUsage unknown = nlohmann::json(RangeUsage{std::nullopt, "not counted"}).get<RangeUsage>();
  EXPECT_FALSE(unknown.used);
}

}  // namespace
}  // namespace natbpf

// util/names: the one home of kernel values in words.
#include <gtest/gtest.h>

#include "util/names.h"

namespace natbpf {
namespace {

TEST(Names, KernelValuesInWords) {
  EXPECT_EQ(family_name(1), "inet");
  EXPECT_EQ(family_name(10), "ip6");
  EXPECT_EQ(family_name(4), "family4");
  EXPECT_STREQ(nf_hook_name(4), "postrouting");
  EXPECT_STREQ(nf_hook_name(5), "?");
  EXPECT_EQ(proto_name(58), "icmpv6");
  EXPECT_EQ(proto_name(132), "proto 132");
  EXPECT_STREQ(tcp_state_name(3), "ESTABLISHED");
  EXPECT_STREQ(tcp_state_name(42), "UNKNOWN");
  EXPECT_TRUE(tcp_state_closing(7));   // TIME_WAIT
  EXPECT_FALSE(tcp_state_closing(3));  // ESTABLISHED
  EXPECT_EQ(status_names(0), "none");
  EXPECT_EQ(status_names((1u << 3) | (1u << 4)), "CONFIRMED|SRC_NAT");
  EXPECT_STREQ(to_string(NftVerdict::Return), "return");
  EXPECT_STREQ(to_string(Origin::TpBtf), "tp_btf");
}

}  // namespace
}  // namespace natbpf

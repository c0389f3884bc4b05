// The NFQUEUE messages the trace table's queue reads: packet messages built
// here with libmnl, as nfnetlink_queue sends them, and parsed back.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>

#include <vector>

#include "sources/packet_queue.h"

using namespace natbpf;

namespace {

// Appends to d an NFQNL_MSG_PACKET of queue `queue` (with a packet header
// of `id` unless hdr_len is 0, truncated to hdr_len bytes).
void put_packet(std::vector<uint8_t>& d, uint16_t queue, uint32_t id, size_t hdr_len = sizeof(nfqnl_msg_packet_hdr),
                uint8_t type = NFQNL_MSG_PACKET) {
  std::vector<char> buf(512);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | type;
  auto* g = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  g->nfgen_family = AF_INET;
  g->version = NFNETLINK_V0;
  g->res_id = htons(queue);
  if (hdr_len) {
    nfqnl_msg_packet_hdr ph{htonl(id), htons(0x0800), 3};
    mnl_attr_put(nlh, NFQA_PACKET_HDR, hdr_len, &ph);
  }
  mnl_attr_put_u32(nlh, NFQA_MARK, htonl(7));
  d.insert(d.end(), buf.data(), buf.data() + MNL_ALIGN(nlh->nlmsg_len));
}

}  // namespace

TEST(PacketQueue, HighestIdOfTheQueuesPackets) {
  std::vector<uint8_t> d;
  put_packet(d, 61000, 4);
  put_packet(d, 61000, 9);
  put_packet(d, 61000, 6);
  EXPECT_EQ(highest_queued_id(d, 61000), 9u);
}

TEST(PacketQueue, OtherQueuesTypesAndTruncatedHeadersAreNotPackets) {
  std::vector<uint8_t> d;
  put_packet(d, 61001, 50);                               // another queue
  put_packet(d, 61000, 51, 0);                            // no packet header
  put_packet(d, 61000, 52, 3);                            // a header too short for the id
  put_packet(d, 61000, 53, sizeof(nfqnl_msg_packet_hdr), NFQNL_MSG_CONFIG);  // not a packet
  EXPECT_EQ(highest_queued_id(d, 61000), std::nullopt);
  put_packet(d, 61000, 2);
  EXPECT_EQ(highest_queued_id(d, 61000), 2u);
  // A datagram cut inside its last message: the whole messages before it count.
  put_packet(d, 61000, 8);
  std::vector<uint8_t> cut(d.begin(), d.end() - 4);
  EXPECT_EQ(highest_queued_id(cut, 61000), 2u);
  EXPECT_EQ(highest_queued_id({}, 61000), std::nullopt);
}

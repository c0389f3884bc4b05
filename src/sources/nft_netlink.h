// nf_tables over netlink without libnftables: owned libmnl/libnftnl objects
// and the batch every change goes through. Shared by nft.cpp (dumps, table
// deletes) and trace_table.cpp (natbpf's own trace table).
#pragma once

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "util/result.h"

namespace natbpf {

struct MnlCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
struct TableFree {
  void operator()(nftnl_table* t) const { nftnl_table_free(t); }
};
struct ChainFree {
  void operator()(nftnl_chain* c) const { nftnl_chain_free(c); }
};
struct RuleFree {
  void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
};
struct SetFree {
  void operator()(nftnl_set* s) const { nftnl_set_free(s); }
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlCloser>;

// A bound NETLINK_NETFILTER socket, close-on-exec: a child (iptables-save)
// holding one that owns a table would keep that table after natbpf is gone.
Result<MnlSocket> open_nft_socket();

// The messages of one nf_tables change (batch begin, the messages, batch
// end), each acknowledged.
class NftBatch {
 public:
  explicit NftBatch(uint16_t family);

  // A message at the end of the batch, filled by the caller, then put().
  nlmsghdr* message(uint16_t type, uint16_t flags);
  void put(const nlmsghdr* nlh);

  // Sends the batch on nl; returns the errno of the first message the
  // kernel refused (0: all applied).
  int commit(mnl_socket* nl);

 private:
  std::vector<char> buf_;
  uint16_t family_;
  size_t len_ = 0, acks_ = 0;
  uint32_t seq_ = 1;
};

}  // namespace natbpf

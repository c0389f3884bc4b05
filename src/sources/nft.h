// libnftables, owned: one context (and its netlink socket) per instance, in
// the network namespace the calling thread is in when it is created.
#pragma once

#include <memory>
#include <string>

#include "util/result.h"

struct nft_ctx;

namespace natbpf {

class NftContext {
 public:
  // stateless: rule text without counter values (as the user wrote the rule).
  static Result<NftContext> create(bool stateless = true);
  NftContext(NftContext&&) noexcept;
  NftContext& operator=(NftContext&&) noexcept;
  ~NftContext();

  // Runs nft commands; returns what nft printed, or its error text.
  Result<std::string> run(const std::string& commands);

 private:
  NftContext() = default;
  nft_ctx* ctx_ = nullptr;
};

// The nftables ruleset generation of the current namespace (NFT_MSG_GETGEN):
// it changes with every committed change, so a snapshot of rule text is
// stale when it differs from the one taken with the snapshot.
Result<uint32_t> nft_generation();

}  // namespace natbpf

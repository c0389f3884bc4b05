#include "sources/nft.h"

#include <nftables/libnftables.h>

#include <utility>

namespace natbpf {

Result<NftContext> NftContext::create(bool stateless) {
  NftContext c;
  c.ctx_ = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!c.ctx_) return Error{"cannot create an nftables context", "is nf_tables available in this kernel?"};
  // Stateless: rule text without counter values, so it reads like the rule the user wrote.
  nft_ctx_output_set_flags(c.ctx_, NFT_CTX_OUTPUT_HANDLE | (stateless ? NFT_CTX_OUTPUT_STATELESS : 0));
  nft_ctx_buffer_output(c.ctx_);
  nft_ctx_buffer_error(c.ctx_);
  return c;
}

NftContext::NftContext(NftContext&& o) noexcept : ctx_(std::exchange(o.ctx_, nullptr)) {}
NftContext& NftContext::operator=(NftContext&& o) noexcept {
  std::swap(ctx_, o.ctx_);
  return *this;
}
NftContext::~NftContext() {
  if (ctx_) nft_ctx_free(ctx_);
}

Result<std::string> NftContext::run(const std::string& commands) {
  int rc = nft_run_cmd_from_buffer(ctx_, commands.c_str());
  std::string out = nft_ctx_get_output_buffer(ctx_);
  std::string err = nft_ctx_get_error_buffer(ctx_);
  if (rc != 0) {
    // nft's error is several lines (message, command, carets): keep the first.
    std::string first = err.substr(0, err.find('\n'));
    return Error{first.empty() ? "nft command failed" : first, ""};
  }
  return out;
}

}  // namespace natbpf

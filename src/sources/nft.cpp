#include "sources/nft.h"

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>
#include <linux/netfilter/nf_tables.h>
#include <nftables/libnftables.h>
#include <sys/socket.h>

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "util/libbpf_quiet.h"

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

namespace natbpf {
namespace {

struct MnlCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
struct GenFree {
  void operator()(nftnl_gen* g) const { nftnl_gen_free(g); }
};

int on_gen(const nlmsghdr* nlh, void* data) {
  std::unique_ptr<nftnl_gen, GenFree> gen(nftnl_gen_alloc());
  if (!gen || nftnl_gen_nlmsg_parse(nlh, gen.get()) < 0 || !nftnl_gen_is_set(gen.get(), NFTNL_GEN_ID))
    return MNL_CB_ERROR;
  *static_cast<std::optional<uint32_t>*>(data) = nftnl_gen_get_u32(gen.get(), NFTNL_GEN_ID);
  return MNL_CB_OK;
}

}  // namespace

Result<uint32_t> nft_generation() {
  std::unique_ptr<mnl_socket, MnlCloser> nl(mnl_socket_open(NETLINK_NETFILTER));
  if (!nl || mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return Error{"nftables netlink socket: " + errno_name(errno), "is nf_tables available?"};
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  uint32_t seq = 1;
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK, seq);
  if (mnl_socket_sendto(nl.get(), nlh, nlh->nlmsg_len) < 0)
    return Error{"nftables generation request: " + errno_name(errno), "run as root (CAP_NET_ADMIN)"};
  std::optional<uint32_t> gen;
  unsigned portid = mnl_socket_get_portid(nl.get());
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl.get(), buf.data(), buf.size());
    if (n < 0) return Error{"nftables generation reply: " + errno_name(errno), ""};
    int r = mnl_cb_run(buf.data(), n, seq, portid, on_gen, &gen);
    if (r < 0) return Error{"nftables generation: " + errno_name(errno), ""};
    if (r == MNL_CB_STOP || gen) break;
  }
  if (!gen) return Error{"nftables generation: no NFTA_GEN_ID in the reply", ""};
  return *gen;
}

}  // namespace natbpf

#include "sources/nft.h"

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <nftables/libnftables.h>
#include <sys/socket.h>

#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "util/libbpf_quiet.h"
#include "util/names.h"

namespace natbpf {

Result<NftContext> NftContext::create(bool stateless, bool terse) {
  NftContext c;
  c.ctx_ = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!c.ctx_) return Error{"cannot create an nftables context", "is nf_tables available in this kernel?"};
  // Stateless: rule text without counter values, so it reads like the rule the user wrote.
  nft_ctx_output_set_flags(c.ctx_, NFT_CTX_OUTPUT_HANDLE | (stateless ? NFT_CTX_OUTPUT_STATELESS : 0) |
                                       (terse ? NFT_CTX_OUTPUT_TERSE : 0));
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
struct TableFree {
  void operator()(nftnl_table* t) const { nftnl_table_free(t); }
};
struct SetFree {
  void operator()(nftnl_set* s) const { nftnl_set_free(s); }
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

// One request to nf_tables on a socket of its own, each reply message
// passed to cb (a dump: until NLMSG_DONE; else until cb has what it wants).
Status nft_request(uint16_t type, uint16_t family, uint16_t flags, const char* what, mnl_cb_t cb, void* data,
                   const std::function<bool()>& done) {
  std::unique_ptr<mnl_socket, MnlCloser> nl(mnl_socket_open(NETLINK_NETFILTER));
  if (!nl || mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return Error{"nftables netlink socket: " + errno_name(errno), "is nf_tables available?"};
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  uint32_t seq = 1;
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), type, family, flags, seq);
  if (mnl_socket_sendto(nl.get(), nlh, nlh->nlmsg_len) < 0)
    return Error{std::string("nftables ") + what + " request: " + errno_name(errno), "run as root (CAP_NET_ADMIN)"};
  unsigned portid = mnl_socket_get_portid(nl.get());
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl.get(), buf.data(), buf.size());
    if (n < 0) return Error{std::string("nftables ") + what + " reply: " + errno_name(errno), ""};
    int r = mnl_cb_run(buf.data(), n, seq, portid, cb, data);
    if (r < 0) return Error{std::string("nftables ") + what + ": " + errno_name(errno), ""};
    if (r == MNL_CB_STOP || done()) return Ok{};
  }
}

int on_table(const nlmsghdr* nlh, void* data) {
  std::unique_ptr<nftnl_table, TableFree> table(nftnl_table_alloc());
  if (!table || nftnl_table_nlmsg_parse(nlh, table.get()) < 0) return MNL_CB_ERROR;
  if (const char* name = nftnl_table_get_str(table.get(), NFTNL_TABLE_NAME))
    static_cast<std::vector<std::string>*>(data)->push_back(name);
  return MNL_CB_OK;
}

using SetCounts = std::map<std::pair<std::string, std::string>, size_t>;

int on_set(const nlmsghdr* nlh, void* data) {
  std::unique_ptr<nftnl_set, SetFree> set(nftnl_set_alloc());
  if (!set || nftnl_set_nlmsg_parse(nlh, set.get()) < 0) return MNL_CB_ERROR;
  const char* table = nftnl_set_get_str(set.get(), NFTNL_SET_TABLE);
  if (table && nftnl_set_is_set(set.get(), NFTNL_SET_FAMILY))
    (*static_cast<SetCounts*>(data))[{family_name(nftnl_set_get_u32(set.get(), NFTNL_SET_FAMILY)), table}]++;
  return MNL_CB_OK;
}

}  // namespace

Result<SetCounts> nft_set_counts() {
  SetCounts counts;
  auto st = nft_request(NFT_MSG_GETSET, NFPROTO_UNSPEC, NLM_F_DUMP, "set list", on_set, &counts, [] { return false; });
  if (!st) return st.error();
  return counts;
}

Result<uint32_t> nft_generation() {
  std::optional<uint32_t> gen;
  auto st = nft_request(NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK, "generation", on_gen, &gen,
                        [&gen] { return gen.has_value(); });
  if (!st) return st.error();
  if (!gen) return Error{"nftables generation: no NFTA_GEN_ID in the reply", ""};
  return *gen;
}

Result<std::vector<std::string>> nft_table_names(uint16_t family) {
  std::vector<std::string> names;
  auto st = nft_request(NFT_MSG_GETTABLE, family, NLM_F_DUMP, "table list", on_table, &names, [] { return false; });
  if (!st) return st.error();
  return names;
}

}  // namespace natbpf

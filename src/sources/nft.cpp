#include "sources/nft.h"

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <nftables/libnftables.h>
#include <sys/socket.h>

#include <cerrno>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "sources/nft_netlink.h"
#include "sources/nft_rule_text.h"
#include "sources/nft_values.h"
#include "util/libbpf_quiet.h"
#include "util/names.h"
#include "util/netlink.h"

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

constexpr size_t kDumpBuffer = 64 * 1024;

// One request to nf_tables on a socket of its own, each reply message
// passed to cb (a dump: until NLMSG_DONE; else until cb has what it wants).
Status nft_request(uint16_t type, uint16_t family, uint16_t flags, const char* what, mnl_cb_t cb, void* data,
                   const std::function<bool()>& done, const std::function<void(nlmsghdr*)>& payload = {},
                   int* refused = nullptr) {
  auto nl = open_nft_socket();
  if (!nl) return nl.error();
  // A dump continues where the last part ended by walking the list from its
  // start (nf_tables_dump_chains, __nf_tables_dump_rules), so its cost grows
  // with the square of the parts. The kernel sizes a part by the largest
  // buffer read so far, up to 32 KB: 4 times fewer parts than with libmnl's
  // 8 KB (45000 chains of 100000 iptables-nft rules, KUBE-SERVICES' 9000).
  // Not for a single reply (the generation, asked per story).
  std::vector<char> buf((flags & NLM_F_DUMP) == NLM_F_DUMP ? kDumpBuffer : MNL_SOCKET_BUFFER_SIZE);
  uint32_t seq = 1;
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), type, family, flags, seq);
  if (payload) payload(nlh);
  if (mnl_socket_sendto(nl->get(), nlh, nlh->nlmsg_len) < 0)
    return Error{std::string("nftables ") + what + " request: " + errno_name(errno), "run as root (CAP_NET_ADMIN)"};
  unsigned portid = mnl_socket_get_portid(nl->get());
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl->get(), buf.data(), buf.size());
    if (n < 0) return Error{std::string("nftables ") + what + " reply: " + errno_name(errno), ""};
    int r = mnl_cb_run(buf.data(), n, seq, portid, cb, data);
    if (r < 0 && refused) *refused = errno;
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

const char* hook_name(uint32_t family, uint32_t hook) {
  static const char* const inet[] = {"prerouting", "input", "forward", "output", "postrouting", "ingress"};
  static const char* const arp[] = {"input", "output", "forward"};
  static const char* const netdev[] = {"ingress", "egress"};
  if (family == NFPROTO_ARP) return hook < 3 ? arp[hook] : nullptr;
  if (family == NFPROTO_NETDEV) return hook < 2 ? netdev[hook] : nullptr;
  return hook < 6 ? inet[hook] : nullptr;
}

struct ChainListing {
  std::string text, family, table;  // family and table of the open "table" block
};

int on_chain(const nlmsghdr* nlh, void* data) {
  std::unique_ptr<nftnl_chain, ChainFree> c(nftnl_chain_alloc());
  if (!c || nftnl_chain_nlmsg_parse(nlh, c.get()) < 0) return MNL_CB_ERROR;
  const char* table = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE);
  const char* name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME);
  if (!table || !name || !nftnl_chain_is_set(c.get(), NFTNL_CHAIN_FAMILY)) return MNL_CB_OK;
  // A regular chain is listed when a story crosses it: a hook names only base chains.
  if (!nftnl_chain_is_set(c.get(), NFTNL_CHAIN_HOOKNUM)) return MNL_CB_OK;
  auto& out = *static_cast<ChainListing*>(data);
  uint32_t family = nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_FAMILY);
  std::string fname = family_name(family);
  if (fname != out.family || table != out.table) {
    if (!out.table.empty()) out.text += "}\n";
    out.family = fname;
    out.table = table;
    out.text += "table " + fname + " " + table + " {\n";
  }
  out.text += "\tchain " + std::string(name) + " {";
  if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_HANDLE))
    out.text += " # handle " + std::to_string(nftnl_chain_get_u64(c.get(), NFTNL_CHAIN_HANDLE));
  out.text += "\n";
  const char* hook = hook_name(family, nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_HOOKNUM));
  if (hook) {
    const char* type = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TYPE);
    out.text += "\t\ttype " + std::string(type ? type : "filter") + " hook " + hook + " priority " +
                std::to_string(static_cast<int32_t>(nftnl_chain_get_s32(c.get(), NFTNL_CHAIN_PRIO))) + ";";
    if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_POLICY))
      out.text += nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_POLICY) == NF_DROP ? " policy drop;" : " policy accept;";
    out.text += "\n";
  }
  out.text += "\t}\n";
  return MNL_CB_OK;
}

int on_rule_kept(const nlmsghdr* nlh, void* data) {
  std::unique_ptr<nftnl_rule, RuleFree> r(nftnl_rule_alloc());
  if (!r || nftnl_rule_nlmsg_parse(nlh, r.get()) < 0 || !nftnl_rule_is_set(r.get(), NFTNL_RULE_HANDLE))
    return MNL_CB_ERROR;
  static_cast<std::vector<std::unique_ptr<nftnl_rule, RuleFree>>*>(data)->push_back(std::move(r));
  return MNL_CB_OK;
}

int on_set_info(const nlmsghdr* nlh, void* data) {
  std::unique_ptr<nftnl_set, SetFree> set(nftnl_set_alloc());
  if (!set || nftnl_set_nlmsg_parse(nlh, set.get()) < 0) return MNL_CB_ERROR;
  auto& info = *static_cast<std::optional<NftSetInfo>*>(data);
  info.emplace();
  info->key_len = nftnl_set_get_u32(set.get(), NFTNL_SET_KEY_LEN);
  info->key_type = nftnl_set_get_u32(set.get(), NFTNL_SET_KEY_TYPE);
  info->flags = nftnl_set_get_u32(set.get(), NFTNL_SET_FLAGS);
  return MNL_CB_OK;
}

int on_set_elem_found(const nlmsghdr* nlh, void* data) {
  if ((nlh->nlmsg_type & 0xff) == NFT_MSG_NEWSETELEM) *static_cast<bool*>(data) = true;
  return MNL_CB_OK;
}

int on_set_elems(const nlmsghdr* nlh, void* data) {
  std::unique_ptr<nftnl_set, SetFree> set(nftnl_set_alloc());
  if (!set || nftnl_set_elems_nlmsg_parse(nlh, set.get()) < 0) return MNL_CB_ERROR;
  auto& info = *static_cast<NftSetInfo*>(data);
  nftnl_set_elems_iter* it = nftnl_set_elems_iter_create(set.get());
  if (!it) return MNL_CB_ERROR;
  for (nftnl_set_elem* e = nftnl_set_elems_iter_next(it); e; e = nftnl_set_elems_iter_next(it)) {
    NftSetInfo::Element el;
    uint32_t len = 0;
    if (const void* key = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len))
      el.key.assign(static_cast<const char*>(key), len);
    if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_VERDICT))
      el.verdict = static_cast<int32_t>(nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_VERDICT));
    if (const char* chain = nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN)) el.chain = chain;
    for (uint16_t attr : {NFTNL_SET_ELEM_USERDATA, NFTNL_SET_ELEM_TIMEOUT, NFTNL_SET_ELEM_EXPIRATION,
                          NFTNL_SET_ELEM_EXPR, NFTNL_SET_ELEM_FLAGS})
      el.extras |= nftnl_set_elem_is_set(e, attr);
    info.elements.push_back(std::move(el));
  }
  nftnl_set_elems_iter_destroy(it);
  return MNL_CB_OK;
}

using Rules = std::vector<std::unique_ptr<nftnl_rule, RuleFree>>;

// The rules of one chain, in order, from a rule dump the kernel filters by table and chain.
Result<Rules> chain_rules(uint16_t family, const std::string& table, const std::string& chain) {
  std::unique_ptr<nftnl_rule, RuleFree> filter(nftnl_rule_alloc());
  if (!filter) return Error{"out of memory", ""};
  nftnl_rule_set_str(filter.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_set_str(filter.get(), NFTNL_RULE_CHAIN, chain.c_str());
  Rules rules;
  auto st = nft_request(NFT_MSG_GETRULE, family, NLM_F_DUMP, "rule list", on_rule_kept, &rules, [] { return false; },
                        [&filter](nlmsghdr* nlh) { nftnl_rule_nlmsg_build_payload(nlh, filter.get()); });
  if (!st) return st.error();
  return rules;
}

// The key length and flags of a set of `table`, and an anonymous set's elements.
Result<NftSetInfo> nft_set_info(uint16_t family, const std::string& table, const std::string& name) {
  std::unique_ptr<nftnl_set, SetFree> filter(nftnl_set_alloc());
  if (!filter) return Error{"out of memory", ""};
  nftnl_set_set_str(filter.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(filter.get(), NFTNL_SET_NAME, name.c_str());
  auto build = [&filter](nlmsghdr* nlh) { nftnl_set_nlmsg_build_payload(nlh, filter.get()); };
  std::optional<NftSetInfo> info;
  auto st = nft_request(NFT_MSG_GETSET, family, NLM_F_ACK, "set", on_set_info, &info,
                        [&info] { return info.has_value(); }, build);
  if (!st) return st.error();
  if (!info) return Error{"set " + name + " not found", ""};
  if (info->flags & NFT_SET_ANONYMOUS) {
    auto elems = [&filter](nlmsghdr* nlh) { nftnl_set_elems_nlmsg_build_payload(nlh, filter.get()); };
    st = nft_request(NFT_MSG_GETSETELEM, family, NLM_F_DUMP, "set element list", on_set_elems, &*info,
                     [] { return false; }, elems);
    if (!st) return st.error();
  }
  return std::move(*info);
}

}  // namespace

Result<MnlSocket> open_nft_socket() {
  MnlSocket nl(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
  if (!nl || mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return Error{"nftables netlink socket: " + errno_name(errno), "is nf_tables available?"};
  return nl;
}

NftBatch::NftBatch(uint16_t family) : buf_(1 << 16), family_(family) {
  put(nftnl_batch_begin(buf_.data(), seq_++));
}

nlmsghdr* NftBatch::message(uint16_t type, uint16_t flags) {
  return nftnl_nlmsg_build_hdr(buf_.data() + len_, type, family_, flags | NLM_F_ACK, seq_++);
}

void NftBatch::put(const nlmsghdr* nlh) {
  if (nlh->nlmsg_flags & NLM_F_ACK) acks_++;
  len_ += NLMSG_ALIGN(nlh->nlmsg_len);
}

int NftBatch::commit(mnl_socket* nl) {
  put(nftnl_batch_end(buf_.data() + len_, seq_++));
  if (mnl_socket_sendto(nl, buf_.data(), len_) < 0) return errno;
  int first_error = 0;
  // One reply per message (an ack, or an error: the batch is then
  // aborted), or one error for the whole batch. nfnetlink runs the batch
  // (and replays one that loaded a module) within sendto, so every reply
  // is queued when it returns: none there is an error, not a wait.
  for (size_t replies = 0; replies < acks_ && !first_error;) {
    ssize_t n = recv(mnl_socket_get_fd(nl), buf_.data(), buf_.size(), MSG_DONTWAIT);
    if (n < 0) return errno == EAGAIN ? ETIMEDOUT : errno;
    for_each_nlmsg({reinterpret_cast<const uint8_t*>(buf_.data()), static_cast<size_t>(n)}, [&](const nlmsghdr* m) {
      if (m->nlmsg_type != NLMSG_ERROR || mnl_nlmsg_get_payload_len(m) < sizeof(nlmsgerr)) return;
      replies++;
      auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
      if (err->error && !first_error) first_error = -err->error;
    });
  }
  return first_error;
}

Result<std::string> nft_chain_listing() {
  ChainListing listing;
  auto st = nft_request(NFT_MSG_GETCHAIN, NFPROTO_UNSPEC, NLM_F_DUMP, "chain list", on_chain, &listing,
                        [] { return false; });
  if (!st) return st.error();
  if (!listing.table.empty()) listing.text += "}\n";
  return std::move(listing.text);
}

Status nft_delete_table(uint16_t family, const std::string& name) {
  auto nl = open_nft_socket();
  if (!nl) return nl.error();
  std::unique_ptr<nftnl_table, TableFree> table(nftnl_table_alloc());
  if (!table) return Error{"out of memory", ""};
  nftnl_table_set_str(table.get(), NFTNL_TABLE_NAME, name.c_str());
  NftBatch batch(family);
  nlmsghdr* nlh = batch.message(NFT_MSG_DELTABLE, 0);
  nftnl_table_nlmsg_build_payload(nlh, table.get());
  batch.put(nlh);
  if (int err = batch.commit(nl->get()))
    return Error{"cannot delete table " + name + ": " + errno_name(err), ""};
  return Ok{};
}

Result<std::vector<uint64_t>> nft_rule_handles(uint16_t family, const std::string& table, const std::string& chain) {
  auto rules = chain_rules(family, table, chain);
  if (!rules) return rules.error();
  std::vector<uint64_t> handles;
  for (const auto& r : *rules) handles.push_back(nftnl_rule_get_u64(r.get(), NFTNL_RULE_HANDLE));
  return handles;
}

Result<std::string> nft_chain_rules_text(uint16_t family, const std::string& table, const std::string& chain) {
  // The rules and their sets are several requests: a change between them
  // (kube-proxy reusing an anonymous set's name) would mix two rulesets.
  auto gen = nft_generation();
  if (!gen) return gen.error();
  auto rules = chain_rules(family, table, chain);
  if (!rules) return rules.error();
  NftSets sets;
  std::string out;
  for (const auto& r : *rules) {
    for (const auto& name : nft_rule_set_names(r.get())) {
      if (sets.count(name)) continue;
      auto info = nft_set_info(family, table, name);
      if (!info) return info.error();
      sets.emplace(name, std::move(*info));
    }
    auto text = nft_rule_text(r.get(), family, sets);
    uint64_t handle = nftnl_rule_get_u64(r.get(), NFTNL_RULE_HANDLE);
    if (!text) return Error{"rule " + std::to_string(handle) + " of chain " + chain + " is not printed here", ""};
    out += "\t\t" + *text + " # handle " + std::to_string(handle) + "\n";
  }
  // An empty dump is also what a chain that is gone gives: libnftables tells them apart.
  if (rules->empty()) return Error{"chain " + chain + " has no rules", ""};
  auto after = nft_generation();
  if (!after || *after != *gen) return Error{"the ruleset changed while chain " + chain + " was read", ""};
  return out;
}

std::optional<bool> nft_set_has(uint16_t family, const std::string& table, const std::string& set,
                                const std::string& key) {
  auto info = nft_set_info(family, table, set);
  if (!info) return std::nullopt;
  // A set of ranges answers with the range that holds the key (the
  // kernel's get of one key is a lookup: nft_rbtree_get, nft_pipapo_get).
  auto bytes = nft_values::set_key(key, info->key_type, info->key_len);
  if (!bytes) return std::nullopt;
  std::unique_ptr<nftnl_set, SetFree> s(nftnl_set_alloc());
  nftnl_set_elem* e = nftnl_set_elem_alloc();
  if (!s || !e) {
    if (e) nftnl_set_elem_free(e);
    return std::nullopt;
  }
  nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.c_str());
  nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, bytes->data(), uint32_t(bytes->size()));
  nftnl_set_elem_add(s.get(), e);  // owned by the set from here
  bool found = false;
  int refused = 0;
  auto st = nft_request(NFT_MSG_GETSETELEM, family, NLM_F_ACK, "set element", on_set_elem_found, &found,
                        [&found] { return found; },
                        [&s](nlmsghdr* nlh) { nftnl_set_elems_nlmsg_build_payload(nlh, s.get()); }, &refused);
  if (st) return found ? std::optional<bool>(true) : std::nullopt;
  if (refused == ENOENT) return false;
  return std::nullopt;
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

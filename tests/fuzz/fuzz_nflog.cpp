// NFLOG datagrams of iptables-legacy TRACE (nfnetlink_log group 0), as
// LegacyTrace::drain and the replay of a recording hand them over, with a
// small legacy ruleset so the verdict and own-rule paths run too.
#include "fuzz_common.h"
#include "sources/legacy_trace.h"

namespace {

const std::vector<natbpf::ChainInfo>& chains() {
  static const auto c = natbpf::parse_legacy_save(
      "*raw\n:PREROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -p tcp -m comment --comment natbpf_1 -j TRACE\n"
      "COMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-NODEPORTS - [0:0]\n"
      "-A PREROUTING -j KUBE-NODEPORTS\n-A KUBE-NODEPORTS -p tcp --dport 52000 -j DNAT --to-destination 10.0.0.3:80\n"
      "COMMIT\n*filter\n:FORWARD DROP [0:0]\n-A FORWARD -j DROP\nCOMMIT\n",
      "ip");
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto datagram = natbpf::fuzz::bytes(data, size);
  auto rules = [](uint8_t, const std::string& table, const std::string& chain) -> const natbpf::ChainInfo* {
    for (const auto& c : chains())
      if (c.table == table && c.name == chain) return &c;
    return nullptr;
  };
  natbpf::parse_nflog_datagram(datagram, 1, "natbpf_1", rules,
                               [](natbpf::NftTraceEvent&& ev) { (void)natbpf::format_nftrace_line(ev); });
  return 0;
}

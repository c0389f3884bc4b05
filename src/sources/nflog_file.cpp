#include "sources/nflog_file.h"

// netinet/in.h before the uapi headers, whose linux/in.h it then leaves out.
#include <netinet/in.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "sources/packet_headers.h"
#include "util/text.h"

namespace natbpf {

// From util/libbpf_quiet.h, which cannot be included here: its libbpf
// headers and pcap's both define struct bpf_insn.
std::string errno_name(int err);

namespace {

constexpr size_t kNflogHdrLen = 4;  // nflog_hdr: family, version, resource id (the group)
constexpr size_t kTlvHdrLen = 4;    // nflog_tlv: length (header included), type
// The kernel's log prefixes are at most NF_LOG_PREFIXLEN (128) bytes with
// their NUL; a longer one (a damaged file) is cut where the kernel's would end.
constexpr size_t kMaxPrefix = 127;
constexpr size_t kIfNameMax = 15;  // IFNAMSIZ without the NUL
constexpr uint64_t kNsPerSec = 1000000000;
// The last second whose nanoseconds still fit in a uint64_t (year 2554).
constexpr uint64_t kMaxSec = UINT64_MAX / kNsPerSec - 1;

uint32_t be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}

uint64_t be64(const uint8_t* p) { return static_cast<uint64_t>(be32(p)) << 32 | be32(p + 4); }

// TLV length and type are in the capturing machine's byte order, and libpcap
// swaps them into this machine's order when the file's byte order differs
// (swap_nflog_header in pcap-util.c), so by now they are in ours.
uint16_t host16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

std::optional<uint64_t> ns_of(uint64_t sec, uint64_t sub_ns) {
  if (sec > kMaxSec || sub_ns >= kNsPerSec) return std::nullopt;
  return sec * kNsPerSec + sub_ns;
}

// Text from a file, as natbpf prints it: printable ASCII, other bytes '?'.
// The prefixes natbpf reads (TRACE, conntrack's) are ASCII; a damaged or
// hostile file must not put terminal escapes on the screen, nor invalid
// UTF-8 into JSON output (nlohmann's dump() throws on it).
std::string printable(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c < 0x20 || c > 0x7e) c = '?';
  return out;
}

// Up to the first NUL (the kernel sends one, a damaged file may not).
std::string prefix_of(std::span<const uint8_t> v) {
  size_t n = 0;
  while (n < v.size() && n < kMaxPrefix && v[n] != 0) n++;
  return printable({reinterpret_cast<const char*>(v.data()), n});
}

// One attribute into rec (or payload); false when its size is not the one
// nfnetlink_log's __build_packet_message gives it. Types natbpf does not use
// (hardware header, uid, conntrack...) are skipped.
bool apply_tlv(uint16_t type, std::span<const uint8_t> v, LogRecord& rec,
               std::optional<std::span<const uint8_t>>& payload) {
  switch (type) {
    case NFULA_PREFIX:
      rec.prefix = prefix_of(v);
      return true;
    case NFULA_MARK:
    case NFULA_IFINDEX_INDEV:
    case NFULA_IFINDEX_OUTDEV: {
      if (v.size() != 4) return false;
      auto& field = type == NFULA_MARK ? rec.mark : type == NFULA_IFINDEX_INDEV ? rec.iif : rec.oif;
      field = be32(v.data());
      return true;
    }
    case NFULA_TIMESTAMP: {  // struct nfulnl_msg_packet_timestamp: be64 sec, be64 usec
      if (v.size() != 16) return false;
      uint64_t usec = be64(v.data() + 8);
      rec.ts_ns = usec < 1000000 ? ns_of(be64(v.data()), usec * 1000) : std::nullopt;
      return rec.ts_ns.has_value();
    }
    case NFULA_PAYLOAD:
      payload = v;
      return true;
    default:
      return true;
  }
}

}  // namespace

bool looks_like_pcap(std::span<const uint8_t> first_bytes) {
  if (first_bytes.size() < 4) return false;
  uint32_t magic = be32(first_bytes.data());
  // pcap with microsecond and nanosecond times, as written by a big- or a
  // little-endian machine; pcapng's block type reads the same both ways.
  return magic == 0xa1b2c3d4 || magic == 0xd4c3b2a1 || magic == 0xa1b23c4d || magic == 0x4d3cb2a1 ||
         magic == 0x0a0d0d0a;
}

std::optional<LogRecord> parse_nflog_pcap_packet(std::span<const uint8_t> data, bool snapped) {
  if (data.size() < kNflogHdrLen) return std::nullopt;
  LogRecord rec;
  rec.family = data[0];
  // nflog_version is the nfgenmsg version, NFNETLINK_V0 in every kernel:
  // another is a layout nobody knows.
  if ((rec.family != NFPROTO_IPV4 && rec.family != NFPROTO_IPV6) || data[1] != 0) return std::nullopt;
  std::optional<std::span<const uint8_t>> payload;
  uint32_t seen = 0;
  size_t off = kNflogHdrLen;
  while (data.size() - off >= kTlvHdrLen) {
    uint16_t len = host16(&data[off]);
    // The kernel's attribute flags (NLA_F_NESTED on NFULA_CT) are not part
    // of the type.
    uint16_t type = host16(&data[off + 2]) & NLA_TYPE_MASK;
    size_t left = data.size() - off;
    if (len < kTlvHdrLen) return std::nullopt;  // 0 would never advance
    std::span<const uint8_t> value;
    if (len > left) {
      if (!snapped || type != NFULA_PAYLOAD) return std::nullopt;
      value = data.subspan(off + kTlvHdrLen);
      off = data.size();
    } else {
      value = data.subspan(off + kTlvHdrLen, len - kTlvHdrLen);
      // Padded to 4 bytes; the last attribute may lack its padding.
      off += std::min(left, (size_t{len} + 3) & ~size_t{3});
    }
    if (type < 32) {
      if (seen & (1u << type)) return std::nullopt;  // the kernel puts each attribute once
      seen |= 1u << type;
    }
    if (!apply_tlv(type, value, rec, payload)) return std::nullopt;
  }
  if (off != data.size() || !payload) return std::nullopt;  // stray bytes that are no TLV
  auto pkt = decode_ip_packet(*payload);
  if (!pkt || pkt->family != rec.family) return std::nullopt;
  rec.pkt = *pkt;
  return rec;
}

namespace {

Error not_an_nflog_capture(const std::string& what) {
  return usage_error(what, "give a capture written by `tcpdump -i nflog:GROUP -w FILE` (pcap or pcapng)");
}

// The record time of a capture opened with nanosecond precision; nullopt for
// a time before 1970 or beyond what ns fit (a damaged pcapng timestamp).
std::optional<uint64_t> pcap_time_ns(const timeval& ts) {
  if (ts.tv_sec < 0 || ts.tv_usec < 0) return std::nullopt;
  return ns_of(static_cast<uint64_t>(ts.tv_sec), static_cast<uint64_t>(ts.tv_usec));
}

}  // namespace

Status read_nflog_pcap(const std::string& path, const std::function<void(LogRecord&&)>& sink,
                       uint64_t& malformed) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return not_an_nflog_capture("cannot read " + path + " (" + errno_name(errno) + ")");
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  // Nanosecond precision: libpcap then gives ns for pcap files of either
  // precision and for pcapng, instead of rounding to microseconds.
  pcap_t* opened = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, errbuf);
  if (!opened) {
    std::fclose(f);  // pcap_fopen_offline leaves it open when it fails
    return not_an_nflog_capture(path + " is not a pcap or pcapng capture (" + errbuf + ")");
  }
  std::unique_ptr<pcap_t, void (*)(pcap_t*)> pcap(opened, pcap_close);  // closes f too
  int link = pcap_datalink(pcap.get());
  if (link != kDltNflog) {
    const char* name = pcap_datalink_val_to_name(link);
    std::string link_name = name ? name : std::to_string(link);
    return usage_error(path + " is a pcap of link type " + link_name + ", not NFLOG",
                       "capture with tcpdump -i nflog:GROUP -w FILE");
  }
  for (uint64_t number = 1;; number++) {
    pcap_pkthdr* hdr = nullptr;
    const u_char* bytes = nullptr;
    int rc = pcap_next_ex(pcap.get(), &hdr, &bytes);
    if (rc == PCAP_ERROR_BREAK) break;  // end of file
    if (rc != 1) {
      // A tail cut off mid-record (tcpdump killed, disk full) or damaged:
      // the records before it still tell their story, and the count says
      // it may be incomplete.
      malformed++;
      break;
    }
    auto rec = parse_nflog_pcap_packet({bytes, hdr->caplen}, hdr->caplen < hdr->len);
    if (!rec) {
      malformed++;
      continue;
    }
    rec->line = number;
    // NFULA_TIMESTAMP is when the kernel saw the packet (always at
    // PREROUTING, INPUT and FORWARD, see __build_packet_message). The record
    // time is when libpcap read the batch nfnetlink_log flushes, up to a
    // second later (NFULNL_TIMEOUT_DEFAULT); ulogd falls back the same way.
    if (!rec->ts_ns) rec->ts_ns = pcap_time_ns(hdr->ts);
    sink(std::move(*rec));
  }
  return Ok{};
}

namespace {

// A ulogd2 JSON line is at most a few KB (every key of its packet plugins
// ~1.5 KB): a longer one is not ulogd's and is not parsed at all.
constexpr size_t kMaxUlogdLine = 64 * 1024;

// The keys of one ulogd JSON object, read strictly: a key that is there with
// the wrong type or out of range (a float, a negative number, a string with
// a NUL) makes the whole line malformed rather than half-read.
class Fields {
 public:
  explicit Fields(const nlohmann::json& obj) : obj_(obj) {}
  bool ok() const { return ok_; }

  std::optional<uint64_t> number(const char* key, uint64_t max) {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return std::nullopt;
    // nlohmann parses whole non-negative numbers as unsigned; get<> of
    // anything else would convert unchecked.
    if (!it->is_number_unsigned() || it->get<uint64_t>() > max) return bad();
    return it->get<uint64_t>();
  }

  std::optional<std::string> text(const char* key, size_t max_len) {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) return bad();
    const auto& s = it->get_ref<const std::string&>();
    if (s.size() > max_len || s.find('\0') != std::string::npos) return bad();
    return s;
  }

 private:
  std::nullopt_t bad() {
    ok_ = false;
    return std::nullopt;
  }
  const nlohmann::json& obj_;
  bool ok_ = true;
};

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {  // H. Hinnant's algorithm
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::optional<unsigned> digits(std::string_view s, size_t at, size_t n) {
  if (at + n > s.size()) return std::nullopt;
  auto v = parse_uint(s.substr(at, n));
  return v ? std::optional<unsigned>(static_cast<unsigned>(*v)) : std::nullopt;
}

// ulogd's "timestamp": local time with its UTC offset,
// "2026-11-26T03:46:39.391093+0100" (microseconds where it had them). Without
// an offset (ulogd before 2.0.7) the zone is unknown: nullopt, not a guess.
std::optional<uint64_t> parse_ulogd_time(std::string_view s) {
  auto year = digits(s, 0, 4), month = digits(s, 5, 2), day = digits(s, 8, 2);
  auto hour = digits(s, 11, 2), minute = digits(s, 14, 2), second = digits(s, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
      s[13] != ':' || s[16] != ':')
    return std::nullopt;
  if (*month < 1 || *month > 12 || *day < 1 || *day > 31 || *hour > 23 || *minute > 59 || *second > 60)
    return std::nullopt;
  size_t at = 19;
  uint64_t sub_ns = 0;
  if (at < s.size() && s[at] == '.') {
    size_t n = 0;
    while (at + 1 + n < s.size() && n < 9 && s[at + 1 + n] >= '0' && s[at + 1 + n] <= '9') n++;
    if (n == 0) return std::nullopt;
    sub_ns = *digits(s, at + 1, n);
    for (size_t i = n; i < 9; i++) sub_ns *= 10;
    at += 1 + n;
  }
  int64_t offset = 0;
  if (s.substr(at) == "Z") {
    offset = 0;
  } else {
    auto oh = digits(s, at + 1, 2), om = digits(s, at + 3, 2);
    if (s.size() != at + 5 || (s[at] != '+' && s[at] != '-') || !oh || !om || *oh > 23 || *om > 59)
      return std::nullopt;
    offset = (s[at] == '-' ? -1 : 1) * static_cast<int64_t>(*oh * 3600 + *om * 60);
  }
  int64_t secs = days_from_civil(*year, *month, *day) * 86400 + *hour * 3600 + *minute * 60 + *second;
  secs -= offset;
  if (secs < 0) return std::nullopt;
  return ns_of(static_cast<uint64_t>(secs), sub_ns);
}

std::optional<uint64_t> ulogd_time(Fields& f, const nlohmann::json& obj) {
  // oob.time.* is NFULA_TIMESTAMP, or ulogd's own clock where the kernel
  // gave none (ulogd_inppkt_NFLOG); "timestamp" is the same second, in
  // local time.
  auto sec = f.number("oob.time.sec", kMaxSec);
  auto usec = f.number("oob.time.usec", 999999);
  if (sec) return ns_of(*sec, usec.value_or(0) * 1000);
  for (const char* key : {"timestamp", "@timestamp"}) {
    auto it = obj.find(key);
    if (it != obj.end() && it->is_string()) return parse_ulogd_time(it->get_ref<const std::string&>());
  }
  return std::nullopt;
}

// The TCP flag byte from BASE's one key per flag; tcp.res2 holds ECE and CWR
// (glibc's struct tcphdr puts them after urg).
uint8_t tcp_flags(Fields& f) {
  uint8_t flags = 0;
  const std::pair<const char*, uint8_t> bits[] = {{"tcp.fin", 0x01}, {"tcp.syn", 0x02}, {"tcp.rst", 0x04},
                                                  {"tcp.psh", 0x08}, {"tcp.ack", 0x10}, {"tcp.urg", 0x20}};
  for (auto [key, bit] : bits)
    if (f.number(key, 1).value_or(0)) flags |= bit;
  flags |= static_cast<uint8_t>(f.number("tcp.res2", 3).value_or(0) << 6);
  return flags;
}

// The packet's headers, as BASE and IP2STR named them; false when they are
// not there (not a packet) or do not fit the family.
bool ulogd_packet(Fields& f, uint8_t family, Packet& p) {
  auto src = f.text("src_ip", 64), dst = f.text("dest_ip", 64);
  auto saddr = src ? Addr::parse(*src) : std::nullopt;
  auto daddr = dst ? Addr::parse(*dst) : std::nullopt;
  if (!saddr || !daddr || saddr->family != family || daddr->family != family) return false;
  p.family = family;
  p.saddr = *saddr;
  p.daddr = *daddr;
  p.l4proto = static_cast<uint8_t>(f.number("ip.protocol", 255).value_or(0));
  p.sport = static_cast<uint16_t>(f.number("src_port", 65535).value_or(0));
  p.dport = static_cast<uint16_t>(f.number("dest_port", 65535).value_or(0));
  p.ip_id = static_cast<uint16_t>(f.number("ip.id", 65535).value_or(0));
  // As decode_ipv4/decode_ipv6 give it: the IP length field, IPv6's plus
  // its 40-byte header.
  if (family == NFPROTO_IPV4) p.len = static_cast<uint32_t>(f.number("ip.totlen", 65535).value_or(0));
  else if (auto n = f.number("ip6.payloadlen", 65535)) p.len = static_cast<uint32_t>(40 + *n);
  if (p.l4proto == IPPROTO_TCP) {
    p.tcp_seq = static_cast<uint32_t>(f.number("tcp.seq", UINT32_MAX).value_or(0));
    p.tcp_ack = static_cast<uint32_t>(f.number("tcp.ackseq", UINT32_MAX).value_or(0));
    p.tcp_flags = tcp_flags(f);
  }
  return true;
}

}  // namespace

bool looks_like_ulogd_json(std::string_view first_line) {
  if (first_line.size() > kMaxUlogdLine) return false;
  auto j = nlohmann::json::parse(first_line.begin(), first_line.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return false;
  // The NFLOG input plugin always sets oob.family and oob.protocol.
  for (const auto& item : j.items())
    if (item.key().rfind("oob.", 0) == 0) return true;
  return false;
}

std::optional<LogRecord> parse_ulogd_json_line(std::string_view line, uint64_t line_number) {
  if (line.size() > kMaxUlogdLine) return std::nullopt;
  auto j = nlohmann::json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;  // also what a parse error gives (discarded)
  Fields f(j);
  LogRecord rec;
  rec.line = line_number;
  if (auto family = f.number("oob.family", 255)) {
    rec.family = static_cast<uint8_t>(*family);
  } else if (auto src = f.text("src_ip", 64)) {
    auto a = Addr::parse(*src);  // a stack without oob.family: the address's form says it
    rec.family = a ? a->family : 0;
  }
  if (rec.family != NFPROTO_IPV4 && rec.family != NFPROTO_IPV6) return std::nullopt;
  if (!ulogd_packet(f, rec.family, rec.pkt)) return std::nullopt;
  auto prefix = f.text("oob.prefix", kMaxUlogdLine);
  rec.prefix = printable(prefix.value_or("").substr(0, kMaxPrefix));
  rec.in = printable(f.text("oob.in", kIfNameMax).value_or(""));
  rec.out = printable(f.text("oob.out", kIfNameMax).value_or(""));
  // ulogd writes the index keys only when the kernel sent them, but
  // oob.mark always, 0 when NFULA_MARK was absent (the kernel sends it only
  // for a nonzero mark): 0 is no mark, as in the other forms.
  for (auto [key, field] : {std::pair{"oob.ifindex_in", &rec.iif}, std::pair{"oob.ifindex_out", &rec.oif},
                            std::pair{"oob.mark", &rec.mark}}) {
    auto v = f.number(key, UINT32_MAX);
    if (v && *v != 0) *field = static_cast<uint32_t>(*v);
  }
  rec.ts_ns = ulogd_time(f, j);
  if (!f.ok()) return std::nullopt;
  return rec;
}

}  // namespace natbpf

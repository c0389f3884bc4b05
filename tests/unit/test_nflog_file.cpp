// Saved NFLOG captures of `tcpdump -i nflog -w`: pcap and pcapng records
// built here byte by byte (hostile TLVs included) and a real capture,
// tests/unit/fixtures/nflog_trace.pcap, written by capture_nflog.sh beside it.
// The ulogd2 JSON form is tested in test_ulogd_json.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "nftrace_builders.h"
#include "sources/nflog_file.h"
#include "temp_file.h"

namespace natbpf {
namespace {

using Bytes = std::vector<uint8_t>;
const std::string kPcapFixture = NATBPF_FIXTURES "/nflog_trace.pcap";

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes be32_bytes(uint32_t v) { return {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)}; }

// An NFLOG pseudo-packet as libpcap hands it over: nflog_hdr, then TLVs
// whose length and type are in this machine's byte order (or the other one,
// as a capture of a machine of the other endianness holds them on disk).
class NflogPacket {
 public:
  explicit NflogPacket(uint8_t family = NFPROTO_IPV4, uint8_t version = 0, bool foreign_order = false)
      : b_{family, version, 0, 1}, foreign_(foreign_order) {}

  NflogPacket& tlv(uint16_t type, const Bytes& value, bool pad = true, std::optional<uint16_t> len = {}) {
    put16(len.value_or(static_cast<uint16_t>(4 + value.size())));
    put16(type);
    b_.insert(b_.end(), value.begin(), value.end());
    while (pad && b_.size() % 4) b_.push_back(0);
    return *this;
  }
  NflogPacket& u32(uint16_t type, uint32_t v) { return tlv(type, be32_bytes(v)); }
  NflogPacket& prefix(const std::string& s) {
    return tlv(NFULA_PREFIX, Bytes(s.c_str(), s.c_str() + s.size() + 1));
  }
  NflogPacket& timestamp(uint64_t sec, uint64_t usec) {
    return tlv(NFULA_TIMESTAMP, concat(concat(be32_bytes(0), be32_bytes(uint32_t(sec))),
                                       concat(be32_bytes(0), be32_bytes(uint32_t(usec)))));
  }
  NflogPacket& raw(const Bytes& bytes) {
    b_.insert(b_.end(), bytes.begin(), bytes.end());
    return *this;
  }
  const Bytes& bytes() const { return b_; }

 private:
  void put16(uint16_t v) {
    if (foreign_) v = static_cast<uint16_t>(v << 8 | v >> 8);
    uint8_t p[2];
    std::memcpy(p, &v, 2);
    b_.insert(b_.end(), p, p + 2);
  }
  Bytes b_;
  bool foreign_;
};

Bytes tcp_syn() {
  return concat(ipv4_header(6, "10.0.0.1", "10.0.0.2", 40, 7), tcp_header(40000, 52000, 1000, 0x02));
}

// A TRACE record of a SYN as the kernel builds it (__build_packet_message).
NflogPacket trace_record() {
  NflogPacket p;
  p.tlv(NFULA_PACKET_HDR, {0x08, 0x00, 0, 0}).prefix("TRACE: raw:PREROUTING:rule:1 ");
  p.u32(NFULA_IFINDEX_INDEV, 2).u32(NFULA_MARK, 0x8000).timestamp(1700000000, 250000);
  p.tlv(NFULA_PAYLOAD, tcp_syn());
  return p;
}

struct PcapRecord {
  uint32_t sec = 0, frac = 0;  // frac: us or ns, as the file's magic says
  Bytes data;
  uint32_t len = 0;  // on the wire; 0: data.size()
};

// A pcap file: the header fields in this machine's order, or big-endian.
std::string save(const Bytes& b) {
  std::string path = temp_path();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  return path;
}

std::string write_pcap(const std::vector<PcapRecord>& records, uint32_t link = 239,
                       uint32_t magic = 0xa1b2c3d4, bool big_endian = false) {
  Bytes out;
  auto u32 = [&](uint32_t v) {
    Bytes b = be32_bytes(v);
    if (!big_endian) std::memcpy(b.data(), &v, 4);
    out.insert(out.end(), b.begin(), b.end());
  };
  auto u16 = [&](uint16_t v) {
    uint8_t b[2] = {uint8_t(v >> 8), uint8_t(v)};
    if (!big_endian) std::memcpy(b, &v, 2);
    out.insert(out.end(), b, b + 2);
  };
  u32(magic), u16(2), u16(4), u32(0), u32(0), u32(262144), u32(link);
  for (const auto& r : records) {
    u32(r.sec), u32(r.frac), u32(uint32_t(r.data.size())), u32(r.len ? r.len : uint32_t(r.data.size()));
    out.insert(out.end(), r.data.begin(), r.data.end());
  }
  return save(out);
}

// A pcapng file: section header, one NFLOG interface (microsecond times, the
// default if_tsresol) and an enhanced packet block per record.
std::string write_pcapng(const std::vector<PcapRecord>& records) {
  Bytes out;
  auto u32 = [&](uint32_t v) {
    auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + 4);
  };
  u32(0x0a0d0d0a), u32(28), u32(0x1a2b3c4d), u32(1), u32(0xffffffff), u32(0xffffffff), u32(28);  // v1.0
  u32(1), u32(20), u32(239), u32(0), u32(20);
  for (const auto& r : records) {
    uint32_t padded = (uint32_t(r.data.size()) + 3) & ~3u;
    uint64_t ts = uint64_t(r.sec) * 1000000 + r.frac;
    u32(6), u32(32 + padded), u32(0), u32(uint32_t(ts >> 32)), u32(uint32_t(ts));
    u32(uint32_t(r.data.size())), u32(uint32_t(r.data.size()));
    out.insert(out.end(), r.data.begin(), r.data.end());
    out.resize(out.size() + padded - r.data.size());
    u32(32 + padded);
  }
  return save(out);
}

// The records of the fixture (a little-endian microsecond pcap).
std::vector<PcapRecord> fixture_records() {
  std::ifstream in(kPcapFixture, std::ios::binary);
  Bytes b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<PcapRecord> out;
  auto u32 = [&](size_t at) {
    uint32_t v;
    std::memcpy(&v, &b[at], 4);
    return v;
  };
  for (size_t at = 24; at + 16 <= b.size();) {
    PcapRecord r{u32(at), u32(at + 4), {}, u32(at + 12)};
    uint32_t cap = u32(at + 8);
    r.data.assign(b.begin() + long(at + 16), b.begin() + long(at + 16 + cap));
    out.push_back(r);
    at += 16 + cap;
  }
  return out;
}

struct Read {
  Status status = Ok{};
  std::vector<LogRecord> records;
  uint64_t malformed = 0;
};

Read read_pcap(const std::string& path) {
  Read r;
  auto sink = [&](LogRecord&& rec) { r.records.push_back(std::move(rec)); };
  r.status = read_nflog_pcap(path, sink, r.malformed);
  return r;
}

TEST(NflogPcap, ParsesTraceRecord) {
  auto rec = parse_nflog_pcap_packet(trace_record().bytes());
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->family, NFPROTO_IPV4);
  EXPECT_EQ(rec->prefix, "TRACE: raw:PREROUTING:rule:1 ");
  EXPECT_EQ(rec->iif, 2u);
  EXPECT_FALSE(rec->oif);
  EXPECT_EQ(rec->mark, 0x8000u);
  EXPECT_EQ(rec->ts_ns, 1700000000250000000u);
  EXPECT_EQ(rec->pkt.str(), "tcp 10.0.0.1:40000 -> 10.0.0.2:52000 [S]");
  EXPECT_EQ(rec->pkt.tcp_seq, 1000u);
  EXPECT_EQ(rec->pkt.ip_id, 7);
  EXPECT_EQ(rec->line, 0u) << "the reader numbers records";

  NflogPacket no_time;  // OUTPUT and POSTROUTING records carry no NFULA_TIMESTAMP
  no_time.prefix("TRACE: filter:OUTPUT:policy:1 ").u32(NFULA_IFINDEX_OUTDEV, 3).tlv(NFULA_PAYLOAD, tcp_syn());
  rec = parse_nflog_pcap_packet(no_time.bytes());
  ASSERT_TRUE(rec);
  EXPECT_FALSE(rec->ts_ns);
  EXPECT_EQ(rec->oif, 3u);
  EXPECT_FALSE(rec->mark) << "the kernel sends NFULA_MARK only for a nonzero mark";
}

TEST(NflogPcap, PrefixIsReadToItsNulAndCutAtTheKernelsLength) {
  NflogPacket nul_inside;
  nul_inside.tlv(NFULA_PREFIX, {'a', 'b', 0, 'c'}).tlv(NFULA_PAYLOAD, tcp_syn());
  EXPECT_EQ(parse_nflog_pcap_packet(nul_inside.bytes())->prefix, "ab");
  NflogPacket no_nul;
  no_nul.tlv(NFULA_PREFIX, Bytes(300, 'x')).tlv(NFULA_PAYLOAD, tcp_syn());
  EXPECT_EQ(parse_nflog_pcap_packet(no_nul.bytes())->prefix, std::string(127, 'x'));
  NflogPacket escapes;  // a terminal escape and bytes that are not UTF-8
  escapes.prefix("TRACE: \x1b[2J\xff\xfe ").tlv(NFULA_PAYLOAD, tcp_syn());
  EXPECT_EQ(parse_nflog_pcap_packet(escapes.bytes())->prefix, "TRACE: ?[2J?? ");
}

TEST(NflogPcap, HostileTlvLengthsAreMalformed) {
  for (uint16_t len : {0, 1, 3}) {  // 0 would loop forever, < 4 inside its own header
    NflogPacket p;
    p.tlv(NFULA_PREFIX, {'a', 0, 0, 0}, true, len).tlv(NFULA_PAYLOAD, tcp_syn());
    EXPECT_FALSE(parse_nflog_pcap_packet(p.bytes())) << "length " << len;
  }
  NflogPacket beyond;
  beyond.tlv(NFULA_PAYLOAD, tcp_syn(), true, 4000);
  EXPECT_FALSE(parse_nflog_pcap_packet(beyond.bytes()));
  NflogPacket prefix_beyond = trace_record();
  prefix_beyond.tlv(NFULA_PREFIX, {'a', 0}, false, 100);
  EXPECT_FALSE(parse_nflog_pcap_packet(prefix_beyond.bytes(), /*snapped=*/true))
      << "only the payload may be cut";
  NflogPacket stray = trace_record();
  stray.raw({0x10, 0x00});  // half a TLV header
  EXPECT_FALSE(parse_nflog_pcap_packet(stray.bytes()));
}

TEST(NflogPcap, SnappedPayloadIsDecodedAsFarAsItWasCaptured) {
  NflogPacket p;  // tcpdump -s 60: the payload TLV claims 44 bytes, 36 are there
  p.prefix("TRACE: raw:PREROUTING:rule:1 ").tlv(NFULA_PAYLOAD, tcp_syn(), true, 48);
  Bytes cut = p.bytes();
  cut.resize(cut.size() - 8);
  EXPECT_FALSE(parse_nflog_pcap_packet(cut, false));
  auto rec = parse_nflog_pcap_packet(cut, true);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->pkt.str(), "tcp 10.0.0.1:40000 -> 10.0.0.2:52000 []") << "flags were cut off";
  EXPECT_EQ(rec->pkt.tcp_seq, 1000u);
}

TEST(NflogPcap, WrongSizedOrRepeatedAttributesAreMalformed) {
  auto with = [](uint16_t type, const Bytes& value) {
    NflogPacket p;
    p.tlv(type, value).tlv(NFULA_PAYLOAD, tcp_syn());
    return p.bytes();
  };
  EXPECT_FALSE(parse_nflog_pcap_packet(with(NFULA_MARK, {0, 1})));
  EXPECT_FALSE(parse_nflog_pcap_packet(with(NFULA_IFINDEX_INDEV, Bytes(8, 0))));
  EXPECT_FALSE(parse_nflog_pcap_packet(with(NFULA_TIMESTAMP, Bytes(8, 0))));
  NflogPacket bad_usec;
  bad_usec.timestamp(1, 1000000).tlv(NFULA_PAYLOAD, tcp_syn());
  EXPECT_FALSE(parse_nflog_pcap_packet(bad_usec.bytes()));
  NflogPacket twice = trace_record();
  twice.prefix("TRACE: nat:PREROUTING:rule:9 ");
  EXPECT_FALSE(parse_nflog_pcap_packet(twice.bytes()));
}

TEST(NflogPcap, FamilyVersionAndPayloadAreChecked) {
  Bytes v6 = concat(ipv6_header(17, "fd00::1", "fd00::2", 8), udp_header(5353, 53, 8));
  auto packet = [](uint8_t family, uint8_t version, const Bytes& payload) {
    NflogPacket p(family, version);
    p.prefix("TRACE: raw:PREROUTING:rule:1 ").tlv(NFULA_PAYLOAD, payload);
    return p.bytes();
  };
  auto rec = parse_nflog_pcap_packet(packet(NFPROTO_IPV6, 0, v6));
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->family, NFPROTO_IPV6);
  EXPECT_EQ(rec->pkt.str(), "udp [fd00::1]:5353 -> [fd00::2]:53");
  EXPECT_FALSE(parse_nflog_pcap_packet(packet(NFPROTO_IPV4, 0, v6))) << "family and payload disagree";
  EXPECT_FALSE(parse_nflog_pcap_packet(packet(NFPROTO_BRIDGE, 0, tcp_syn())));
  EXPECT_FALSE(parse_nflog_pcap_packet(packet(NFPROTO_IPV4, 1, tcp_syn()))) << "an unknown version";
  EXPECT_FALSE(parse_nflog_pcap_packet(packet(NFPROTO_IPV4, 0, {0x45, 0, 0})));
  EXPECT_FALSE(parse_nflog_pcap_packet(NflogPacket().prefix("TRACE: a:b:rule:1 ").bytes())) << "no payload";
  EXPECT_FALSE(parse_nflog_pcap_packet(Bytes{2, 0, 0}));
  EXPECT_FALSE(parse_nflog_pcap_packet({}));
}

TEST(NflogPcap, FlaggedUnknownAndUnpaddedAttributesAreFine) {
  NflogPacket p;
  p.tlv(NFULA_CT | NLA_F_NESTED, Bytes(8, 0xee)).tlv(99, {1, 2, 3});
  p.prefix("TRACE: raw:OUTPUT:rule:1 ").tlv(NFULA_PAYLOAD, concat(tcp_syn(), {0xaa}), /*pad=*/false);
  auto rec = parse_nflog_pcap_packet(p.bytes());
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->prefix, "TRACE: raw:OUTPUT:rule:1 ");
}

TEST(NflogPcap, LooksLikePcap) {
  for (uint32_t magic : {0xa1b2c3d4u, 0xd4c3b2a1u, 0xa1b23c4du, 0x4d3cb2a1u, 0x0a0d0d0au})
    EXPECT_TRUE(looks_like_pcap(be32_bytes(magic))) << std::hex << magic;
  std::ifstream in(kPcapFixture, std::ios::binary);
  Bytes head(16);
  in.read(reinterpret_cast<char*>(head.data()), 16);
  EXPECT_TRUE(looks_like_pcap(head));
  EXPECT_FALSE(looks_like_pcap(Bytes{'T', 'R', 'A', 'C', 'E'}));
  EXPECT_FALSE(looks_like_pcap(Bytes{0xd4, 0xc3, 0xb2}));
}

TEST(NflogFile, ReadsRealTcpdumpCapture) {
  auto r = read_pcap(kPcapFixture);
  ASSERT_TRUE(r.status) << r.status.error().to_string();
  EXPECT_EQ(r.malformed, 0u);
  ASSERT_EQ(r.records.size(), 11u);
  for (size_t i = 0; i < r.records.size(); i++) EXPECT_EQ(r.records[i].line, i + 1);
  const LogRecord& syn = r.records[0];
  EXPECT_EQ(syn.prefix, "TRACE: raw:PREROUTING:rule:1 ");
  EXPECT_EQ(syn.family, NFPROTO_IPV4);
  EXPECT_EQ(syn.pkt.str(), "tcp 10.99.0.1:55018 -> 10.99.0.2:8080 [S]");
  EXPECT_EQ(syn.pkt.tcp_seq, 2832993870u);
  EXPECT_EQ(syn.pkt.ip_id, 7045);
  EXPECT_EQ(syn.iif, 2u);
  EXPECT_FALSE(syn.oif);
  EXPECT_FALSE(syn.mark);
  // The kernel's timestamp, not libpcap's read of the batch a second later.
  EXPECT_EQ(syn.ts_ns, 1795661767302781000u);
  EXPECT_EQ(r.records[1].prefix, "TRACE: filter:INPUT:rule:2 ");
  EXPECT_EQ(r.records[1].mark, 0x2au);
  const LogRecord& icmp = r.records[4];  // filter OUTPUT: no NFULA_TIMESTAMP, the record time
  EXPECT_EQ(icmp.prefix, "TRACE: filter:OUTPUT:policy:1 ");
  EXPECT_EQ(icmp.pkt.l4proto, 1);
  EXPECT_EQ(icmp.pkt.saddr.str(), "10.99.0.2");
  EXPECT_EQ(icmp.oif, 2u);
  EXPECT_FALSE(icmp.iif);
  EXPECT_EQ(icmp.ts_ns, 1795661769340540000u);
  EXPECT_EQ(r.records[6].pkt.tcp_flags, 0x10);
  EXPECT_EQ(r.records[6].pkt.tcp_ack, 584062687u);
  EXPECT_EQ(r.records[7].pkt.tcp_flags, 0x18);
  EXPECT_EQ(r.records[8].pkt.tcp_flags, 0x11);
  const LogRecord& v6 = r.records[10];
  EXPECT_EQ(v6.family, NFPROTO_IPV6);
  EXPECT_EQ(v6.pkt.str(), "udp [fd00:99::1]:52576 -> [fd00:99::2]:53");
  EXPECT_EQ(v6.pkt.len, 51u);
}

TEST(NflogFile, ReadsPcapngOfTheSameCapture) {
  std::string path = write_pcapng(fixture_records());
  auto ng = read_pcap(path), pcap = read_pcap(kPcapFixture);
  unlink(path.c_str());
  ASSERT_TRUE(ng.status) << ng.status.error().to_string();
  ASSERT_EQ(ng.records.size(), pcap.records.size());
  for (size_t i = 0; i < ng.records.size(); i++) {
    EXPECT_EQ(ng.records[i].pkt.str(), pcap.records[i].pkt.str());
    EXPECT_EQ(ng.records[i].prefix, pcap.records[i].prefix);
    EXPECT_EQ(ng.records[i].ts_ns, pcap.records[i].ts_ns);
    EXPECT_EQ(ng.records[i].line, pcap.records[i].line);
  }
}

TEST(NflogFile, NanosecondAndBigEndianCapturesAreRead) {
  NflogPacket p;
  p.prefix("TRACE: filter:OUTPUT:rule:1 ").tlv(NFULA_PAYLOAD, tcp_syn());
  std::string path = write_pcap({{5, 123456789, p.bytes()}}, 239, 0xa1b23c4d);
  auto r = read_pcap(path);
  unlink(path.c_str());
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].ts_ns, 5123456789u);
  // Written by a big-endian machine: libpcap swaps the TLV headers to ours.
  NflogPacket foreign(NFPROTO_IPV4, 0, /*foreign_order=*/true);
  foreign.prefix("TRACE: filter:OUTPUT:rule:1 ").tlv(NFULA_PAYLOAD, tcp_syn());
  path = write_pcap({{5, 7, foreign.bytes()}}, 239, 0xa1b2c3d4, /*big_endian=*/true);
  r = read_pcap(path);
  unlink(path.c_str());
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(r.records[0].prefix, "TRACE: filter:OUTPUT:rule:1 ");
  EXPECT_EQ(r.records[0].ts_ns, 5000007000u);
}

TEST(NflogFile, WrongLinkTypeOrNoCaptureNamesTheFix) {
  std::string path = write_pcap({{1, 0, tcp_syn()}}, /*EN10MB*/ 1);
  auto r = read_pcap(path);
  ASSERT_FALSE(r.status);
  EXPECT_EQ(r.status.error().message, path + " is a pcap of link type EN10MB, not NFLOG");
  EXPECT_EQ(r.status.error().hint, "capture with tcpdump -i nflog:GROUP -w FILE");
  EXPECT_EQ(r.status.error().exit_code, 2);
  std::ofstream(path) << "TRACE: raw:PREROUTING:rule:1 IN=eth0\n";
  r = read_pcap(path);
  ASSERT_FALSE(r.status);
  EXPECT_EQ(r.status.error().message.rfind(path + " is not a pcap or pcapng capture (", 0), 0u)
      << r.status.error().message;
  EXPECT_NE(r.status.error().hint.find("tcpdump -i nflog:GROUP -w FILE"), std::string::npos);
  unlink(path.c_str());
  r = read_pcap(path);
  ASSERT_FALSE(r.status);
  EXPECT_EQ(r.status.error().message, "cannot read " + path + " (ENOENT)");
}

TEST(NflogFile, MalformedRecordsAndACutTailAreCounted) {
  Bytes good = trace_record().bytes();
  Bytes bridge = good;
  bridge[0] = NFPROTO_BRIDGE;
  std::string path = write_pcap({{1, 0, good}, {2, 0, bridge}, {3, 0, good}, {4, 0, good}});
  // tcpdump killed mid-write
  ASSERT_EQ(truncate(path.c_str(), off_t(std::filesystem::file_size(path) - 10)), 0);
  auto r = read_pcap(path);
  unlink(path.c_str());
  ASSERT_TRUE(r.status);
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[0].line, 1u);
  EXPECT_EQ(r.records[1].line, 3u) << "packet numbers count the malformed ones too";
  EXPECT_EQ(r.malformed, 2u);
}

}  // namespace
}  // namespace natbpf

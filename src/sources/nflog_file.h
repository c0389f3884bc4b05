// Saved NFLOG captures -> LogRecord, in the two forms people keep them:
// `tcpdump -i nflog:GROUP -w FILE` (pcap or pcapng of link type NFLOG, read
// with libpcap, the NFLOG pseudo-header parsed here) and ulogd2's JSON output
// plugin (one object per line, keys as ulogd2 2.0.8 writes them with the
// NFLOG, BASE, IFINDEX and IP2STR plugins in its stack). Both carry what the
// kernel's nfnetlink_log sent: the log prefix (iptables TRACE's
// "TRACE: raw:PREROUTING:rule:1 ", conntrack's INVALID log, an NFLOG rule's
// --nflog-prefix), interfaces, mark and the logged packet's headers.
// Nothing in a file is trusted: a record that does not parse is nullopt (the
// caller counts it as malformed), never an exception or a guess; text (the
// prefix, interface names) comes out as printable ASCII, other bytes as '?'.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "sources/log_record.h"
#include "util/result.h"

namespace natbpf {

// LINKTYPE_NFLOG / DLT_NFLOG (pcap/dlt.h).
inline constexpr int kDltNflog = 239;

// Whether a file starts like a pcap (microsecond or nanosecond magic, either
// byte order) or pcapng (section header block) capture; format detection only.
bool looks_like_pcap(std::span<const uint8_t> first_bytes);

// One NFLOG pseudo-packet as a pcap record holds it: nflog_hdr (family,
// version 0, group) and TLVs. ts_ns is the kernel's NFULA_TIMESTAMP where
// there is one, line is 0 (the reader numbers records). snapped: the capture
// cut the record short (caplen < len), so the payload TLV, which the kernel
// writes last, may run past the end and is decoded as far as it was kept.
// nullopt when the record is malformed: a family other than IPv4/IPv6, a TLV
// shorter than its header or longer than the record, a repeated or
// wrong-sized attribute, or no payload that decodes as an IP packet of that
// family.
std::optional<LogRecord> parse_nflog_pcap_packet(std::span<const uint8_t> data, bool snapped = false);

// Streams the records of a pcap or pcapng capture of link type NFLOG to sink
// in file order, never holding more than one record. line is the packet's
// number in the file (1-based, as `tcpdump -r` and Wireshark count), ts_ns
// the kernel's timestamp or else the capture's record time. Records that do
// not parse, and a damaged or cut-off tail, are counted in malformed. An
// error, with the fix, when the file cannot be read or is not an NFLOG capture.
Status read_nflog_pcap(const std::string& path, const std::function<void(LogRecord&&)>& sink,
                       uint64_t& malformed);

// Whether a line is an object of ulogd2's JSON output for NFLOG (format
// detection): JSON with ulogd's "oob." keys.
bool looks_like_ulogd_json(std::string_view first_line);

// The record of one line of ulogd2 JSON. Keys read (ulogd2 2.0.8):
// "oob.family", "oob.prefix", "oob.in", "oob.out", "oob.ifindex_in",
// "oob.ifindex_out", "oob.mark", "oob.time.sec", "oob.time.usec" (else
// "timestamp" or "@timestamp" with its UTC offset), "src_ip", "dest_ip",
// "ip.protocol", "ip.id", "ip.totlen", "ip6.payloadlen", "src_port",
// "dest_port", "tcp.seq", "tcp.ackseq" and the flags "tcp.fin" ... "tcp.urg",
// "tcp.res2" (ECE, CWR). nullopt for a line that is not a logged IPv4/IPv6
// packet: bad JSON, no addresses (e.g. a conntrack flow line), or a key there
// with the wrong type or out of range.
std::optional<LogRecord> parse_ulogd_json_line(std::string_view line, uint64_t line_number);

}  // namespace natbpf

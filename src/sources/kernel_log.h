// Saved kernel log lines of netfilter's nf_log (nf_log_syslog): iptables
// TRACE ("TRACE: nat:KUBE-NODEPORTS:rule:16 IN=eth0 OUT= ... SRC=... DST=...
// ... PROTO=TCP SPT=55694 DPT=52000 SEQ=... ACK=0 ... SYN URGP=0 OPT (...)
// MARK=0x8000") and conntrack's INVALID log ("nf_ct_proto_6: invalid tcp
// flag combination IN= OUT=lo SRC=..."), whatever the logger put before
// them: syslog ("Jan 1 21:23:16 host kernel: "), dmesg ("[ 2176.164569] "),
// `dmesg -T`, `journalctl -k` (also -o short-iso / short-precise), or none.
// Scanned by hand without allocation-heavy tools: logs run to millions of lines.
#pragma once

#include <optional>
#include <string_view>

#include "sources/log_record.h"

namespace natbpf {

// The record of one line; nullopt for a line that is no nf_log line of
// TRACE or conntrack (other kernel messages, a truncated line).
std::optional<LogRecord> parse_kernel_log_line(std::string_view line, uint64_t line_number);
// The same into a record that is reused line after line (its strings keep
// their storage); false, and the record unspecified, where the above gives nullopt.
bool parse_kernel_log_line(std::string_view line, uint64_t line_number, LogRecord& into);

// The time a log line's prefix names, in ns on the log's clock: the dmesg
// uptime "[ 2176.164569]" where there is one, else a syslog/journal/ISO
// wall-clock time (seconds since the start of its year; ISO: since the epoch).
std::optional<uint64_t> kernel_log_time(std::string_view before_message);

// Whether a line is an nf_log line of TRACE or conntrack (format detection).
bool looks_like_kernel_log(std::string_view line);

}  // namespace natbpf

#include "sources/kernel_log.h"

#include <charconv>
#include <cstring>
#include <string>

namespace natbpf {
namespace {

template <typename T>
bool number(std::string_view s, T& out, int base = 10) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && end == s.data() + s.size();
}

// "Jan" -> 0 ... "Dec" -> 11.
int month_index(std::string_view m) {
  static constexpr const char* kMonths = "JanFebMarAprMayJunJulAugSepOctNovDec";
  if (m.size() != 3) return -1;
  for (int i = 0; i < 12; i++)
    if (std::memcmp(kMonths + 3 * i, m.data(), 3) == 0) return i;
  return -1;
}

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// "21:23:16" or "21:23:16.123456" at s: seconds of the day and the fraction in ns.
std::optional<uint64_t> clock_ns(std::string_view s) {
  unsigned h = 0, m = 0, sec = 0;
  if (s.size() < 8 || s[2] != ':' || s[5] != ':' || !number(s.substr(0, 2), h) || !number(s.substr(3, 2), m) ||
      !number(s.substr(6, 2), sec) || h > 23 || m > 59 || sec > 60)
    return std::nullopt;
  uint64_t ns = (h * 3600ULL + m * 60ULL + sec) * 1'000'000'000ULL;
  if (s.size() > 9 && s[8] == '.') {
    uint64_t scale = 100'000'000ULL;
    for (size_t i = 9; i < s.size() && s[i] >= '0' && s[i] <= '9' && scale; i++, scale /= 10) ns += (s[i] - '0') * scale;
  }
  return ns;
}

// "Jan  1 21:23:16" (syslog, journal, dmesg -T after the weekday).
std::optional<uint64_t> month_day_time(std::string_view s) {
  int month = month_index(s.substr(0, 3));
  if (month < 0 || s.size() < 4 || s[3] != ' ') return std::nullopt;
  s.remove_prefix(4);
  while (!s.empty() && s[0] == ' ') s.remove_prefix(1);
  size_t sp = s.find(' ');
  unsigned day = 0;
  if (sp == std::string_view::npos || !number(s.substr(0, sp), day) || day < 1 || day > 31) return std::nullopt;
  auto t = clock_ns(s.substr(sp + 1));
  if (!t) return std::nullopt;
  return (static_cast<uint64_t>(month) * 31 + (day - 1)) * 86400ULL * 1'000'000'000ULL + *t;
}

// "2026-01-01T21:23:16.123456+00:00" (journalctl -o short-iso, RFC 5424 syslog).
std::optional<uint64_t> iso_time(std::string_view s) {
  int64_t y = 0;
  unsigned mo = 0, d = 0;
  if (s.size() < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || !number(s.substr(0, 4), y) ||
      !number(s.substr(5, 2), mo) || !number(s.substr(8, 2), d) || mo < 1 || mo > 12 || d < 1 || d > 31)
    return std::nullopt;
  auto t = clock_ns(s.substr(11));
  if (!t) return std::nullopt;
  int64_t days = days_from_civil(y, mo, d);
  if (days < 0) return std::nullopt;
  return static_cast<uint64_t>(days) * 86400ULL * 1'000'000'000ULL + *t;
}

// "[ 2176.164569]" -> uptime in ns.
std::optional<uint64_t> uptime_stamp(std::string_view s) {
  size_t open = s.find('[');
  while (open != std::string_view::npos) {
    size_t close = s.find(']', open);
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view in = s.substr(open + 1, close - open - 1);
    while (!in.empty() && in[0] == ' ') in.remove_prefix(1);
    size_t dot = in.find('.');
    uint64_t sec = 0, frac = 0;
    if (dot != std::string_view::npos && dot > 0 && in.size() - dot - 1 == 6 && number(in.substr(0, dot), sec) &&
        number(in.substr(dot + 1), frac))
      return sec * 1'000'000'000ULL + frac * 1000ULL;
    open = s.find('[', close);
  }
  return std::nullopt;
}

uint8_t proto_number(std::string_view name) {
  if (name == "TCP") return 6;
  if (name == "UDP") return 17;
  if (name == "UDPLITE") return 136;
  if (name == "ICMP") return 1;
  if (name == "ICMPv6") return 58;
  if (name == "SCTP") return 132;
  uint8_t p = 0;
  return number(name, p) ? p : 0;
}

uint8_t tcp_flag(std::string_view word) {
  static constexpr std::pair<const char*, uint8_t> kFlags[] = {{"FIN", 0x01}, {"SYN", 0x02}, {"RST", 0x04},
                                                               {"PSH", 0x08}, {"ACK", 0x10}, {"URG", 0x20},
                                                               {"ECE", 0x40}, {"CWR", 0x80}};
  if (word.size() != 3) return 0;  // every flag has three letters
  for (auto [name, bit] : kFlags)
    if (std::memcmp(word.data(), name, 3) == 0) return bit;
  return 0;
}

// key == name, with the length known when compiling (no memcmp call): the
// keys of every field of every line are compared (logs run to millions of lines).
template <size_t N>
bool is(std::string_view key, const char (&name)[N]) {
  return key.size() == N - 1 && std::memcmp(key.data(), name, N - 1) == 0;
}

// Where the nf_log message starts (its prefix), or npos.
size_t message_start(std::string_view line) {
  size_t at = line.find("TRACE: ");
  if (at == std::string_view::npos) at = line.find("nf_ct_");
  return at;
}

}  // namespace

namespace {

std::optional<uint64_t> parse_log_time(std::string_view s) {
  if (auto t = uptime_stamp(s)) return t;
  if (auto t = iso_time(s)) return t;
  if (auto t = month_day_time(s)) return t;
  // dmesg -T: "[Thu Jan  1 21:23:16 2026] "
  if (s.size() > 5 && s[0] == '[' && s[4] == ' ') return month_day_time(s.substr(5));
  return std::nullopt;
}

}  // namespace

std::optional<uint64_t> kernel_log_time(std::string_view s) {
  // Consecutive lines mostly have the same text before the message (syslog
  // stamps whole seconds): the last one read is remembered, per thread.
  thread_local std::string last_text;
  thread_local std::optional<uint64_t> last_time;
  thread_local bool known = false;
  if (known && s == last_text) return last_time;
  last_time = parse_log_time(s);
  last_text.assign(s);
  known = true;
  return last_time;
}

bool looks_like_kernel_log(std::string_view line) {
  size_t at = message_start(line);
  return at != std::string_view::npos && line.find(" IN=", at) != std::string_view::npos &&
         line.find(" SRC=", at) != std::string_view::npos;
}

std::optional<LogRecord> parse_kernel_log_line(std::string_view line, uint64_t line_number) {
  LogRecord r;
  if (!parse_kernel_log_line(line, line_number, r)) return std::nullopt;
  return r;
}

bool parse_kernel_log_line(std::string_view line, uint64_t line_number, LogRecord& r) {
  size_t at = message_start(line);
  if (at == std::string_view::npos) return false;
  size_t in = line.find(" IN=", at);
  if (in == std::string_view::npos) return false;
  {
    // A fresh record, with the old one's string storage.
    std::string prefix = std::move(r.prefix), in_name = std::move(r.in), out_name = std::move(r.out);
    r = LogRecord{};
    r.prefix = std::move(prefix);
    r.in = std::move(in_name);
    r.out = std::move(out_name);
    r.in.clear();
    r.out.clear();
  }
  r.line = line_number;
  r.prefix.assign(line.substr(at, in + 1 - at));
  r.ts_ns = kernel_log_time(line.substr(0, at));
  std::string_view rest = line.substr(in + 1);
  bool l4 = false;  // past PROTO=: SPT, ID, SEQ, LEN... now belong to the transport header
  bool have_src = false, have_dst = false;
  Packet& p = r.pkt;
  while (!rest.empty()) {
    size_t sp = rest.find(' ');
    std::string_view tok = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
    if (tok.empty()) continue;
    size_t eq = tok.find('=');
    if (eq == std::string_view::npos) {
      if (l4 && p.l4proto == 6) p.tcp_flags |= tcp_flag(tok);
      continue;
    }
    std::string_view key = tok.substr(0, eq), value = tok.substr(eq + 1);
    if (is(key, "IN")) r.in.assign(value);
    else if (is(key, "OUT")) r.out.assign(value);
    else if (is(key, "MARK")) {
      uint32_t mark = 0;
      if (value.substr(0, 2) == "0x" && number(value.substr(2), mark, 16)) r.mark = mark;
    } else if (!l4 && (is(key, "SRC") || is(key, "DST"))) {
      auto a = Addr::parse(std::string(value));
      if (!a) return false;
      (is(key, "SRC") ? p.saddr : p.daddr) = *a;
      (is(key, "SRC") ? have_src : have_dst) = true;
    } else if (!l4 && is(key, "LEN")) (void)number(value, p.len);
    else if (!l4 && is(key, "ID")) (void)number(value, p.ip_id);
    else if (is(key, "PROTO")) {
      l4 = true;
      p.l4proto = proto_number(value);
    } else if (l4 && is(key, "SPT")) (void)number(value, p.sport);
    else if (l4 && is(key, "DPT")) (void)number(value, p.dport);
    else if (l4 && p.l4proto == 6 && is(key, "SEQ")) (void)number(value, p.tcp_seq);
    else if (l4 && p.l4proto == 6 && is(key, "ACK")) (void)number(value, p.tcp_ack);
  }
  if (!have_src || !have_dst || p.saddr.family != p.daddr.family) return false;
  p.family = p.saddr.family;
  r.family = p.family == 10 ? 10 : 2;  // NFPROTO_IPV6 / NFPROTO_IPV4
  return true;
}

}  // namespace natbpf

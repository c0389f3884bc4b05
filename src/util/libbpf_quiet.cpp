#include "util/libbpf_quiet.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace natbpf {
namespace {

std::mutex g_mutex;
std::string g_last;

int capture(enum libbpf_print_level level, const char* fmt, va_list args) {
  // libbpf always passes a format; with UBSan's nonnull check GCC 12 sees a
  // path with a null one and warns (-Wformat-overflow) unless it is ruled out.
  if (!fmt) return 0;
  // NATBPF_LIBBPF_DEBUG=1 shows libbpf's own log (verifier output included).
  static const bool verbose = std::getenv("NATBPF_LIBBPF_DEBUG") != nullptr;
  if (verbose) {
    va_list copy;
    va_copy(copy, args);
    vfprintf(stderr, fmt, copy);
    va_end(copy);
  }
  if (level == LIBBPF_DEBUG) return 0;
  char buf[512];
  int n = vsnprintf(buf, sizeof(buf), fmt, args);
  std::string line(buf, n > 0 ? std::min<size_t>(n, sizeof(buf) - 1) : 0);
  while (!line.empty() && line.back() == '\n') line.pop_back();
  std::lock_guard lock(g_mutex);
  g_last = line;
  return 0;
}

}  // namespace

LibbpfQuiet::LibbpfQuiet() : previous_(libbpf_set_print(capture)) {}
LibbpfQuiet::~LibbpfQuiet() { libbpf_set_print(previous_); }

std::string LibbpfQuiet::last_message() {
  std::lock_guard lock(g_mutex);
  return g_last;
}

std::string errno_name(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "errno " + std::to_string(err);
}

}  // namespace natbpf

// Times one range-usage count the way `natbpf clash` does it per report
// (ct_range_usage: tuple lookups up to kRangeLookupMax tuples, else a dump
// filtered in the kernel), beside the full-table dump it replaced. Run in
// the namespace whose table to count (bench/conntrack_scale.sh does).
// Usage: ct_range DST DPORT MIN_ADDR MAX_ADDR MIN_PORT MAX_PORT RUNS
// Prints: method, the count, how, median ms and max ms over RUNS.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "sources/ct_lookup.h"

using namespace natbpf;

namespace {

void timed(const char* method, int runs, const std::function<std::pair<uint64_t, std::string>()>& count) {
  std::vector<double> ms;
  std::pair<uint64_t, std::string> last;
  for (int i = 0; i < runs; i++) {
    auto t0 = std::chrono::steady_clock::now();
    last = count();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("%s used=%llu how=\"%s\" median_ms=%.3f max_ms=%.3f\n", method, static_cast<unsigned long long>(last.first),
              last.second.c_str(), ms[ms.size() / 2], ms.back());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: ct_range DST DPORT MIN_ADDR MAX_ADDR MIN_PORT MAX_PORT RUNS\n");
    return 2;
  }
  auto dst = Addr::parse(argv[1]), lo = Addr::parse(argv[3]), hi = Addr::parse(argv[4]);
  int runs = std::atoi(argv[7]);
  if (!dst || !lo || !hi || runs < 1) {
    std::fprintf(stderr, "ct_range: bad address or run count\n");
    return 2;
  }
  RangeQuery q{6, *dst, static_cast<uint16_t>(std::atoi(argv[2])), *lo, *hi, static_cast<uint16_t>(std::atoi(argv[5])),
               static_cast<uint16_t>(std::atoi(argv[6]))};
  timed("range_usage", runs, [&] {
    auto r = ct_range_usage(q);
    if (!r) return std::pair<uint64_t, std::string>{0, "error: " + r.error().message};
    return std::pair<uint64_t, std::string>{r->used.value_or(0), r->how};
  });
  timed("full_dump", runs, [&] {
    auto d = ct_dump(0);
    if (!d) return std::pair<uint64_t, std::string>{0, "error: " + d.error().message};
    return std::pair<uint64_t, std::string>{count_range_usage(*d, q), std::to_string(d->size()) + " entries sent"};
  });
  return 0;
}

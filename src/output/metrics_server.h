// The HTTP endpoint of natbpf drops --prometheus: civetweb serves GET
// /metrics from its own threads; the text is made on natbpf's event loop
// (the only thread that reads the kernel and the world), which a scrape asks
// for fresh figures and waits on, briefly. A scrape never blocks the loop,
// and the loop never waits for a scrape.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "util/result.h"

struct mg_context;
struct mg_connection;

namespace natbpf {

// "ADDR:PORT", ":PORT" (every IPv4 address) or "[IPV6]:PORT" -> civetweb's
// listening_ports form; a usage error naming the fix otherwise.
Result<std::string> parse_listen_address(const std::string& text);

class MetricsServer {
 public:
  // Scrapes within this long of the last refresh are answered at once.
  static constexpr uint64_t kFreshNs = 1'000'000'000;
  // How long a scrape waits for the loop before it gets the last text.
  static constexpr int kWaitMs = 5000;

  static Result<std::unique_ptr<MetricsServer>> start(const std::string& listen, std::string initial_text);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Event loop side: a scrape is waiting for fresh figures.
  bool wanted() const { return wanted_.load(std::memory_order_acquire); }
  // Event loop side: readable when a scrape starts waiting (an eventfd), so
  // the loop answers at once instead of on its next tick; consume() reads it.
  int wake_fd() const { return wake_fd_; }
  void consume_wake();
  // Event loop side: the new text; wakes the waiting scrapes.
  void publish(std::string text);
  uint64_t scrapes() const { return scrapes_.load(); }

 private:
  MetricsServer() = default;
  static int handle_metrics(mg_connection* conn, void* self);
  std::string fresh_text();

  mg_context* ctx_ = nullptr;
  int wake_fd_ = -1;
  std::mutex mutex_;
  std::condition_variable published_;
  std::string text_;
  uint64_t generation_ = 0, published_ns_ = 0;
  std::atomic<bool> wanted_{false};
  std::atomic<uint64_t> scrapes_{0};
};

}  // namespace natbpf

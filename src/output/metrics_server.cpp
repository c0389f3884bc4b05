#include "output/metrics_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <csignal>

#include <charconv>
#include <chrono>

#include "util/libbpf_quiet.h"
#include "util/runtime.h"

namespace natbpf {

namespace {

constexpr const char* kListenHint = "e.g. --prometheus 0.0.0.0:9477, :9477 or [::1]:9477";

// civetweb reports its errors through mg_start2; its own log lines would
// only repeat them on stderr.
int quiet_log(const mg_connection*, const char*) { return 1; }

}  // namespace

Result<std::string> parse_listen_address(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return usage_error("--prometheus wants ADDR:PORT, not \"" + text + "\"", kListenHint);
  std::string host = text.substr(0, colon), port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
    return usage_error("--prometheus: \"" + port_text + "\" is not a port (1-65535)", kListenHint);
  if (host.empty()) return std::to_string(port);
  unsigned char buf[16];
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), buf) != 1)
      return usage_error("--prometheus: \"" + host + "\" is not an IPv6 address", kListenHint);
    return host + ":" + std::to_string(port);
  }
  if (inet_pton(AF_INET, host.c_str(), buf) != 1)
    return usage_error("--prometheus: \"" + host + "\" is not an IPv4 address (IPv6 goes in brackets)", kListenHint);
  return host + ":" + std::to_string(port);
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& listen, std::string initial_text) {
  auto ports = parse_listen_address(listen);
  if (!ports) return ports.error();
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->text_ = std::move(initial_text);  // never fresh: the first scrape asks the loop
  server->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (server->wake_fd_ < 0) return Error{"cannot create an eventfd (" + errno_name(errno) + ")", "raise the open file limit"};
  mg_init_library(0);
  mg_callbacks callbacks{};
  callbacks.log_message = quiet_log;
  // Two workers: a scrape and a readiness probe at once; nothing else is served.
  const char* options[] = {"listening_ports", ports->c_str(), "num_threads", "2", "request_timeout_ms", "10000",
                           nullptr};
  mg_init_data init{&callbacks, server.get(), options};
  char error_text[256] = "";
  unsigned error_code = 0;
  mg_error_data error{&error_code, error_text, sizeof error_text};
  // civetweb's threads start with every signal blocked: SIGINT and SIGTERM
  // must reach natbpf's loop (a signalfd), never a server thread.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  server->ctx_ = mg_start2(&init, &error);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (!server->ctx_) {
    mg_exit_library();
    return Error{"cannot serve metrics on " + listen + ": " + (error_text[0] ? error_text : "civetweb did not start"),
                 "is the port in use? pick another with --prometheus ADDR:PORT"};
  }
  mg_set_request_handler(server->ctx_, "/metrics$", &MetricsServer::handle_metrics, server.get());
  return server;
}

MetricsServer::~MetricsServer() {
  if (!ctx_) {
    if (wake_fd_ >= 0) close(wake_fd_);
    return;
  }
  {
    // Scrapes waiting for the loop get the last text at once.
    std::lock_guard lock(mutex_);
    generation_++;
  }
  published_.notify_all();
  mg_stop(ctx_);
  mg_exit_library();
  close(wake_fd_);  // after mg_stop: no handler thread writes to it any more
}

void MetricsServer::publish(std::string text) {
  {
    std::lock_guard lock(mutex_);
    text_ = std::move(text);
    generation_++;
    published_ns_ = monotonic_ns();
    wanted_.store(false, std::memory_order_release);
  }
  published_.notify_all();
}

void MetricsServer::consume_wake() {
  uint64_t count;
  (void)!read(wake_fd_, &count, sizeof(count));
}

// The text as of at most kFreshNs ago: asks the loop and waits for it, up
// to kWaitMs (a loop busy reading a large ruleset), then gives what it has.
std::string MetricsServer::fresh_text() {
  std::unique_lock lock(mutex_);
  if (generation_ > 0 && monotonic_ns() - published_ns_ < kFreshNs) return text_;
  uint64_t seen = generation_;
  wanted_.store(true, std::memory_order_release);
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  published_.wait_for(lock, std::chrono::milliseconds(kWaitMs), [&] { return generation_ != seen; });
  return text_;
}

int MetricsServer::handle_metrics(mg_connection* conn, void* self) {
  auto* server = static_cast<MetricsServer*>(self);
  const mg_request_info* info = mg_get_request_info(conn);
  std::string method = info && info->request_method ? info->request_method : "";
  if (method != "GET" && method != "HEAD") {
    mg_send_http_error(conn, 405, "natbpf serves GET /metrics only\n");
    return 405;
  }
  server->scrapes_++;
  std::string text = server->fresh_text();
  mg_send_http_ok(conn, "text/plain; version=0.0.4; charset=utf-8", static_cast<long long>(text.size()));
  if (method == "GET") mg_write(conn, text.data(), text.size());
  return 200;
}

}  // namespace natbpf

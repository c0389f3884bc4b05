// Sources of typed events with one lifecycle, shared by trace, clash and
// drops: the BPF ring buffer, the nftables trace stream and iptables-legacy
// TRACE. cannot_run() says why a source cannot run here; start() takes its
// kernel handles; fd() becomes readable when events wait and read() hands
// them to the sink the source was built with; stop() (and the destructor)
// gives every handle back. Lost and malformed input is counted, never fatal.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "util/result.h"
#include "util/runtime.h"

namespace natbpf {

// The raw bytes a source received (a netlink datagram, a ring-buffer
// record) and when, before decoding: what `--record` writes.
using RawTap = std::function<void(std::span<const uint8_t> bytes, uint64_t recv_ns)>;

class Source {
 public:
  virtual ~Source() = default;
  virtual std::string name() const = 0;
  // nullopt when it can run; otherwise the reason, for the user.
  virtual std::optional<std::string> cannot_run() = 0;
  virtual Status start() = 0;
  virtual void stop() = 0;
  virtual int fd() const = 0;
  virtual Status read() = 0;
  virtual uint64_t lost() const = 0;       // events the kernel dropped before natbpf read them
  virtual uint64_t malformed() const = 0;  // records that failed to decode
  // Events the source's kernel side counted and rejected as not the job's
  // (clash: netfilter drops no conntrack counter explains).
  virtual uint64_t rejected() const { return 0; }
  // Sources that can be replayed offline pass their raw input to tap.
  virtual bool set_tap(RawTap tap) {
    (void)tap;
    return false;
  }
};

// Raw datagrams of a source, held with their receive times until what
// parsing them needs is there: iptables-legacy TRACE lines name rules by
// number, resolved against the first ruleset snapshot, read on a worker
// (the event loop goes on reading the other sources meanwhile), and join
// the stories that nftables trace messages, read after them, open. A hold of
// more than max_bytes is parsed at once (its lookups then wait). ready() is
// asked until it first says yes (none: ready from the start).
class HeldDatagrams {
 public:
  using Parse = std::function<void(std::span<const uint8_t> datagram, uint64_t recv_ns)>;
  HeldDatagrams(std::function<bool()> ready, size_t max_bytes) : ready_(std::move(ready)), max_bytes_(max_bytes) {}
  void set_ready(std::function<bool()> ready) { ready_ = std::move(ready); }
  // Runs before datagrams are parsed, once for those received since it last
  // ran (e.g. to read another socket whose messages were sent before them).
  void set_before_parse(std::function<void()> before) { before_ = std::move(before); }
  // Holds d (a hold over max_bytes is parsed at once, d last).
  void hold(std::span<const uint8_t> d, uint64_t recv_ns, const Parse& parse);
  // Parses what is held, in the order received: once ready(), or now with force.
  void release(bool force, const Parse& parse);
  bool empty() const { return held_.empty(); }

 private:
  bool ready();
  void before_parse();

  std::function<bool()> ready_;  // dropped once it said yes
  std::function<void()> before_;
  bool fresh_ = false;  // a datagram came since before_ last ran
  size_t max_bytes_;
  size_t bytes_ = 0;
  std::deque<std::pair<std::vector<uint8_t>, uint64_t>> held_;
};

// The running sources of one command. A source that cannot run, or fails to
// start, is an error when the command needs it and otherwise skipped with
// its reason (shown to the user).
class Sources {
 public:
  Sources() = default;
  Sources(const Sources&) = delete;
  Sources& operator=(const Sources&) = delete;
  ~Sources() { stop(); }

  // read_rank orders reading when several sources have events at once
  // (lower first): a source whose events attach to what another source's
  // events opened is read after it.
  Status add(std::unique_ptr<Source> source, bool required, int read_rank = 0);
  const std::vector<std::string>& skipped() const { return skipped_; }  // "iptables-legacy TRACE: ..."
  Source* find(const std::string& name);  // a running source, or nullptr
  std::vector<Watch> watches();
  Status read_all();  // once more, before the final flush
  uint64_t lost() const;
  uint64_t malformed() const;
  uint64_t rejected() const;
  void stop();

 private:
  std::vector<Source*> in_read_order() const;

  std::vector<std::unique_ptr<Source>> running_;  // in start order
  std::vector<int> ranks_;                        // read_rank of running_[i]
  std::vector<std::string> skipped_;
};

}  // namespace natbpf

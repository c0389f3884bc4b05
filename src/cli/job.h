// The run skeleton shared by trace, clash and drops: privileges, the
// recording (created before anything exists in the kernel, removed again
// when the run fails before it got ready), the namespace, the attach plan,
// stop signals, the sources, the world (live, and recorded when --record is
// given), the ready file and the event loop. Whatever a job adds is given
// back on every path out.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "probe/attach_plan.h"
#include "sources/bpf.h"
#include "sources/source.h"
#include "util/runtime.h"
#include "world/live_world.h"
#include "world/recorded_world.h"
#include "world/recording.h"

namespace natbpf {

struct JobSpec {
  std::string netns;  // --netns: name, PID or path; "" stays in natbpf's own namespace
  std::vector<std::string> hooks;  // the BPF hooks the job wants
  PlanRequest request;
  std::string ready_file, record;
  nlohmann::json record_header;  // "command" and what a replay needs of the options
  bool preload_symbols = true;   // kallsyms for world().symbol, read before ready
  bool preload_drop_reasons = false;  // BTF's drop reason names for world().drop_reason, likewise
};

class Job {
 public:
  explicit Job(JobSpec spec);
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;
  ~Job();

  // Privileges and BTF, the recording, the namespace, the plan, the signals.
  Status prepare();
  uint32_t netns_inode() const { return netns_inode_; }
  const Plan& plan() const { return plan_; }
  std::set<std::string> attached_hooks() const;
  Sources& sources() { return sources_; }
  // What the job asks the system: recorded too with --record.
  World& world() { return recording_world_ ? static_cast<World&>(*recording_world_) : live_world_; }
  RecordingWriter* recorder() { return recorder_ ? &*recorder_ : nullptr; }

  // The plan's BPF programs as a source: each record reaches sink with the
  // moment it was read, and is recorded as kind (a second session of the
  // same job, with its own filter, records under its own kind). only: the
  // hooks this session attaches (default: the whole plan).
  using TimedSink = std::function<void(BpfEvent&&, uint64_t recv_ns)>;
  Status add_bpf(const BpfFilter& filter, TimedSink sink, bool required, int read_rank = 0,
                 const std::string& kind = "bpf", const std::set<std::string>& only = {});
  // The moment the job starts counting, recorded.
  uint64_t start_now();
  // The moment of a tick, recorded so a replay ticks at the same moments.
  uint64_t tick_now(bool final);

  // Writes the ready file and runs the loop until a stop signal, the
  // duration or limits.done(); every source is read once more at the end.
  // extra: watches of the command itself (a metrics scrape waiting), beside the sources'.
  Status run(LoopLimits limits, std::vector<Watch> extra = {});

 private:
  JobSpec spec_;
  uint32_t netns_inode_ = 0;
  Plan plan_;
  std::optional<StopSignals> signals_;
  std::optional<RecordingWriter> recorder_;
  LiveWorld live_world_;
  std::optional<RecordingWorld> recording_world_;
  Sources sources_;
  uint64_t last_recv_ns_ = 0;
  bool armed_ = false;  // the ready file was written: the run began
};

// Parses --proto: "" (any), tcp, udp, or icmp when allow_icmp.
Result<uint8_t> parse_proto(const std::string& text, bool allow_icmp);

}  // namespace natbpf

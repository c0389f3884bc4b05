// Renders and writes told stories on a thread of its own (`explain --log`):
// a saved log's stories are told faster than one thread renders, prints and
// frees them. Stories pass in batches through a bounded queue, so memory
// stays bounded; they are written to stdout in the order pushed.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "journey/journey.h"
#include "output/trace_render.h"

namespace natbpf {

class StoryWriter {
 public:
  // The renderer is used by the writer's thread only until finish().
  explicit StoryWriter(TraceRenderer& renderer);
  ~StoryWriter() { finish(); }
  StoryWriter(const StoryWriter&) = delete;
  StoryWriter& operator=(const StoryWriter&) = delete;

  void push(Journey&& j);  // waits while the queue is full
  void finish();           // every story pushed written and flushed; the thread ends

 private:
  static constexpr size_t kBatchStories = 32;
  static constexpr size_t kBatches = 2;  // queued, besides the one each side holds
  static constexpr size_t kOutputBytes = 64 * 1024;  // written in pieces of about this

  void run();
  void hand_over();

  TraceRenderer& renderer_;
  std::vector<Journey> pending_;  // filled by push
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<Journey>> full_, free_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace natbpf

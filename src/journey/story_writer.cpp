#include "journey/story_writer.h"

#include <iostream>

namespace natbpf {

StoryWriter::StoryWriter(TraceRenderer& renderer) : renderer_(renderer) {
  pending_.reserve(kBatchStories);
  thread_ = std::thread([this] { run(); });
}

void StoryWriter::push(Journey&& j) {
  pending_.push_back(std::move(j));
  if (pending_.size() == kBatchStories) hand_over();
}

void StoryWriter::hand_over() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return full_.size() < kBatches; });
  full_.push_back(std::move(pending_));
  pending_.clear();
  if (!free_.empty()) {  // a batch the writer emptied: its capacity kept
    pending_ = std::move(free_.front());
    free_.pop_front();
  }
  lock.unlock();
  cv_.notify_all();
}

void StoryWriter::finish() {
  if (!thread_.joinable()) return;
  if (!pending_.empty()) hand_over();
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

// The writer's thread: batches rendered, written and freed in order.
void StoryWriter::run() {
  std::string out;
  std::vector<Journey> batch;
  for (;;) {
    batch.clear();  // the stories freed here, outside the lock
    {
      std::unique_lock lock(mu_);
      if (batch.capacity()) free_.push_back(std::move(batch));
      batch = {};
      cv_.wait(lock, [this] { return !full_.empty() || done_; });
      if (full_.empty()) break;
      batch = std::move(full_.front());
      full_.pop_front();
    }
    cv_.notify_all();
    for (const Journey& j : batch) {
      renderer_.packet(j, out);
      if (out.size() >= kOutputBytes) {
        std::cout.write(out.data(), static_cast<std::streamsize>(out.size()));
        out.clear();
      }
    }
  }
  std::cout.write(out.data(), static_cast<std::streamsize>(out.size()));
  std::cout.flush();
}

}  // namespace natbpf

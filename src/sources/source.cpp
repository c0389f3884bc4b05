#include "sources/source.h"

#include <algorithm>

namespace natbpf {

Status Sources::add(std::unique_ptr<Source> source, bool required, int read_rank) {
  std::string name = source->name();
  if (auto why = source->cannot_run()) {
    if (required) return Error{name + " cannot run here: " + *why, "run `natbpf probe` to see what this kernel allows"};
    skipped_.push_back(name + ": " + *why);
    return Ok{};
  }
  if (auto st = source->start(); !st) {
    source->stop();
    if (required) return st;
    skipped_.push_back(name + ": " + st.error().to_string());
    return Ok{};
  }
  running_.push_back(std::move(source));
  ranks_.push_back(read_rank);
  return Ok{};
}

std::vector<Source*> Sources::in_read_order() const {
  std::vector<size_t> idx(running_.size());
  for (size_t i = 0; i < idx.size(); i++) idx[i] = i;
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return ranks_[a] < ranks_[b]; });
  std::vector<Source*> out;
  for (size_t i : idx) out.push_back(running_[i].get());
  return out;
}

Source* Sources::find(const std::string& name) {
  for (auto& s : running_)
    if (s->name() == name) return s.get();
  return nullptr;
}

std::vector<Watch> Sources::watches() {
  std::vector<Watch> w;
  for (Source* s : in_read_order())
    if (s->fd() >= 0) w.push_back({s->fd(), [s] { return s->read(); }});
  return w;
}

Status Sources::read_all() {
  for (Source* s : in_read_order())
    if (auto st = s->read(); !st) return st;
  return Ok{};
}

uint64_t Sources::lost() const {
  uint64_t n = 0;
  for (const auto& s : running_) n += s->lost();
  return n;
}

uint64_t Sources::malformed() const {
  uint64_t n = 0;
  for (const auto& s : running_) n += s->malformed();
  return n;
}

uint64_t Sources::rejected() const {
  uint64_t n = 0;
  for (const auto& s : running_) n += s->rejected();
  return n;
}

void Sources::stop() {
  // Last started, first stopped: later sources may build on earlier ones.
  for (auto it = running_.rbegin(); it != running_.rend(); ++it) (*it)->stop();
  running_.clear();
  ranks_.clear();
}

bool HeldDatagrams::ready() {
  if (ready_ && ready_()) ready_ = nullptr;
  return !ready_;
}

void HeldDatagrams::before_parse() {
  if (!fresh_) return;
  fresh_ = false;
  if (before_) before_();
}

void HeldDatagrams::hold(std::span<const uint8_t> d, uint64_t recv_ns, const Parse& parse) {
  fresh_ = true;
  if (bytes_ + d.size() > max_bytes_) {
    before_parse();
    release(true, parse);
    parse(d, recv_ns);
    return;
  }
  bytes_ += d.size();
  held_.emplace_back(std::vector<uint8_t>(d.begin(), d.end()), recv_ns);
}

void HeldDatagrams::release(bool force, const Parse& parse) {
  if (held_.empty() || (!force && !ready())) return;
  before_parse();
  // Taken off one at a time: one added meanwhile (from a parse) goes behind the rest.
  while (!held_.empty()) {
    auto [d, recv_ns] = std::move(held_.front());
    held_.pop_front();
    bytes_ -= d.size();
    parse(d, recv_ns);
  }
}

}  // namespace natbpf

#include "sources/source.h"

namespace natbpf {

Status Sources::add(std::unique_ptr<Source> source, bool required) {
  std::string name = source->name();
  if (auto why = source->cannot_run()) {
    if (required) return Error{name + " cannot run here: " + *why, "run `natbpf probe` to see what this kernel allows"};
    skipped_.push_back(name + ": " + *why);
    return Ok{};
  }
  if (auto st = source->start(); !st) {
    source->stop();
    if (required) return st;
    skipped_.push_back(name + ": " + st.error().message);
    return Ok{};
  }
  running_.push_back(std::move(source));
  return Ok{};
}

Source* Sources::find(const std::string& name) {
  for (auto& s : running_)
    if (s->name() == name) return s.get();
  return nullptr;
}

std::vector<Watch> Sources::watches() {
  std::vector<Watch> w;
  for (auto& s : running_)
    if (s->fd() >= 0) w.push_back({s->fd(), [src = s.get()] { return src->read(); }});
  return w;
}

Status Sources::read_all() {
  for (auto& s : running_)
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

void Sources::stop() {
  // Last started, first stopped: later sources may build on earlier ones.
  for (auto it = running_.rbegin(); it != running_.rend(); ++it) (*it)->stop();
  running_.clear();
}

}  // namespace natbpf

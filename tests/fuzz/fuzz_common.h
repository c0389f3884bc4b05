// Shared by the libFuzzer targets: the input as an owned, aligned buffer
// (the parsers read netlink headers in place) and as text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace natbpf::fuzz {

// A copy of exactly size bytes, so AddressSanitizer sees any read past them.
inline std::vector<uint8_t> bytes(const uint8_t* data, size_t size) { return {data, data + size}; }

inline std::string text(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

}  // namespace natbpf::fuzz

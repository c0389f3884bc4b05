// Errors are values: a Result<T> holds a T or an Error that says what went
// wrong and what to do about it. Only main() turns an Error into an exit code.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace natbpf {

struct Error {
  std::string message;  // one line: what failed
  std::string hint;     // one line: what to do, may be empty
  int exit_code = 1;    // 2 for usage and permission problems

  std::string to_string() const { return hint.empty() ? message : message + ": " + hint; }
};

inline Error usage_error(std::string message, std::string hint = {}) {
  return Error{std::move(message), std::move(hint), 2};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<T>(v_); }
  const T& value() const { return std::get<T>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const Error& error() const { return std::get<Error>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;

}  // namespace natbpf

// Errors as values (in the spirit of absl::Status / std::expected).
//
// Every failing operation returns an Error that names what failed and, for
// system calls, the errno. Call sites stay flat with RETURN_IF_ERROR and
// ASSIGN_OR_RETURN. No exceptions cross module boundaries.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace kf {

class Error {
 public:
  Error() = default;
  explicit Error(std::string message, int sys_errno = 0)
      : message_(std::move(message)), errno_(sys_errno) {}

  // "what: strerror(errno)" for a failed system call or ioctl.
  static Error Sys(const std::string& what, int sys_errno = errno);

  const std::string& message() const { return message_; }
  int sys_errno() const { return errno_; }
  // Adds context in front: "loading template: <message>".
  Error Context(const std::string& what) const {
    return Error(what + ": " + message_, errno_);
  }

 private:
  std::string message_;
  int errno_ = 0;
};

// Result<T>: a T or an Error.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}       // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}   // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Status: success or an Error (Result<void>).
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  static Status Ok() { return Status(); }

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace kf

#define KF_CONCAT_INNER(a, b) a##b
#define KF_CONCAT(a, b) KF_CONCAT_INNER(a, b)

// Returns the error of a Status or Result expression from the current function.
#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    auto&& kf_status_ = (expr);               \
    if (!kf_status_.ok()) return kf_status_.error(); \
  } while (0)

// ASSIGN_OR_RETURN(auto x, MakeX()); declares x or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(KF_CONCAT(kf_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.error();          \
  lhs = std::move(tmp).value()

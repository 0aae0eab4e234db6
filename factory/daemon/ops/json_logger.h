// The daemon's log: one JSON object per line, to stderr or a file.
//
//   {"time":"2026-05-01T12:00:00.123Z","level":"info","msg":"vm ready",
//    "sandbox":"a1b2","template":"bare","ms":1.2}
//
// Keys, in this order: time (RFC 3339, UTC, milliseconds), level (debug,
// info, warn, error), msg, then "sandbox" when the line is about one, then
// the extra fields in the order they were added. Lines below the level are
// dropped. Thread-safe: each line is formatted outside the lock and written
// with one write(2) (O_APPEND for files), so lines never interleave.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "factory/daemon/ops/log_level.h"
#include "vmm-glue/result.h"
#include "vmm-glue/unique_fd.h"

namespace kf::ops {

// Optional parts of a line. Extra keys that collide with time, level, msg or
// sandbox are written as "field.<key>" rather than shadowing them.
class LogFields {
 public:
  LogFields& Sandbox(std::string_view id);
  LogFields& Str(std::string_view key, std::string_view value);
  LogFields& Int(std::string_view key, int64_t value);
  LogFields& Uint(std::string_view key, uint64_t value);
  LogFields& Num(std::string_view key, double value);  // NaN/Inf -> null
  LogFields& Bool(std::string_view key, bool value);

  const std::string& sandbox() const { return sandbox_; }
  bool has_sandbox() const { return has_sandbox_; }
  // The extra fields as JSON members, each led by a comma: ,"k":v,"k2":v2
  const std::string& extra_json() const { return extra_; }

 private:
  void AddKey(std::string_view key);
  std::string sandbox_;
  bool has_sandbox_ = false;
  std::string extra_;
};

class JsonLogger {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  // Logs to stderr (fd 2, not closed by the logger).
  explicit JsonLogger(LogLevel min_level);
  // Logs to `path` (created 0640 if missing, appended to). Reopen() opens
  // it again (after logrotate moved it: call it on SIGHUP).
  static Result<std::unique_ptr<JsonLogger>> OpenFile(const std::string& path, LogLevel min_level);
  // Logs to `path`, or to stderr when `path` is empty.
  static Result<std::unique_ptr<JsonLogger>> Open(const std::string& path, LogLevel min_level);

  JsonLogger(const JsonLogger&) = delete;
  JsonLogger& operator=(const JsonLogger&) = delete;

  void Log(LogLevel level, std::string_view msg, const LogFields& fields = LogFields());
  void Debug(std::string_view msg, const LogFields& f = LogFields()) {
    Log(LogLevel::kDebug, msg, f);
  }
  void Info(std::string_view msg, const LogFields& f = LogFields()) {
    Log(LogLevel::kInfo, msg, f);
  }
  void Warn(std::string_view msg, const LogFields& f = LogFields()) {
    Log(LogLevel::kWarn, msg, f);
  }
  void Error(std::string_view msg, const LogFields& f = LogFields()) {
    Log(LogLevel::kError, msg, f);
  }

  bool Enabled(LogLevel level) const { return level >= min_level_.load(std::memory_order_relaxed); }
  void SetLevel(LogLevel level) { min_level_.store(level, std::memory_order_relaxed); }
  Status Reopen();  // no-op for stderr
  void SetClockForTest(Clock clock) { clock_ = std::move(clock); }

  // One line, with its '\n': what Log() writes.
  static std::string FormatLine(std::chrono::system_clock::time_point time, LogLevel level,
                                std::string_view msg, const LogFields& fields);
  // "2026-05-01T12:00:00.123Z"
  static std::string FormatTime(std::chrono::system_clock::time_point time);

 private:
  JsonLogger(UniqueFd file, std::string path, LogLevel min_level);

  std::atomic<LogLevel> min_level_;
  Clock clock_ = [] { return std::chrono::system_clock::now(); };
  std::string path_;  // empty: stderr
  std::mutex mu_;
  UniqueFd file_;  // guarded by mu_; invalid: stderr
};

}  // namespace kf::ops

#include "factory/daemon/ops/json_logger.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "factory/json_escape.h"
#include "factory/daemon/ops/sys_error.h"

namespace kf::ops {
namespace {

bool Reserved(std::string_view key) {
  return key == "time" || key == "level" || key == "msg" || key == "sandbox";
}

void WriteAll(int fd, const std::string& line) {
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(fd, line.data() + off, line.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to report a failing log; drop the line
    off += static_cast<size_t>(n);
  }
}

Result<UniqueFd> OpenLogFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
  if (!fd.valid()) return SysError("opening log file " + path);
  return fd;
}

}  // namespace

void LogFields::AddKey(std::string_view key) {
  extra_.push_back(',');
  AppendJsonString(extra_, Reserved(key) ? "field." + std::string(key) : std::string(key));
  extra_.push_back(':');
}

LogFields& LogFields::Sandbox(std::string_view id) {
  sandbox_ = std::string(id);
  has_sandbox_ = true;
  return *this;
}

LogFields& LogFields::Str(std::string_view key, std::string_view value) {
  AddKey(key);
  AppendJsonString(extra_, value);
  return *this;
}

LogFields& LogFields::Int(std::string_view key, int64_t value) {
  AddKey(key);
  extra_ += std::to_string(value);
  return *this;
}

LogFields& LogFields::Uint(std::string_view key, uint64_t value) {
  AddKey(key);
  extra_ += std::to_string(value);
  return *this;
}

LogFields& LogFields::Num(std::string_view key, double value) {
  AddKey(key);
  if (!std::isfinite(value)) {
    extra_ += "null";
    return *this;
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  extra_.append(buf, ec == std::errc() ? end : buf);
  return *this;
}

LogFields& LogFields::Bool(std::string_view key, bool value) {
  AddKey(key);
  extra_ += value ? "true" : "false";
  return *this;
}

JsonLogger::JsonLogger(LogLevel min_level) : min_level_(min_level) {}

JsonLogger::JsonLogger(UniqueFd file, std::string path, LogLevel min_level)
    : min_level_(min_level), path_(std::move(path)), file_(std::move(file)) {}

Result<std::unique_ptr<JsonLogger>> JsonLogger::OpenFile(const std::string& path,
                                                         LogLevel min_level) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenLogFile(path));
  return std::unique_ptr<JsonLogger>(new JsonLogger(std::move(fd), path, min_level));
}

Result<std::unique_ptr<JsonLogger>> JsonLogger::Open(const std::string& path, LogLevel min_level) {
  if (path.empty()) return std::make_unique<JsonLogger>(min_level);
  return OpenFile(path, min_level);
}

Status JsonLogger::Reopen() {
  if (path_.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(UniqueFd fd, OpenLogFile(path_));
  std::lock_guard<std::mutex> lock(mu_);
  file_ = std::move(fd);
  return Status::Ok();
}

std::string JsonLogger::FormatTime(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(time.time_since_epoch()).count();
  time_t secs = static_cast<time_t>(ms / 1000);
  int milli = static_cast<int>(ms % 1000);
  if (milli < 0) {  // before 1970: floor, not truncate
    milli += 1000;
    --secs;
  }
  tm utc{};
  gmtime_r(&secs, &utc);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, milli);
  return buf;
}

std::string JsonLogger::FormatLine(std::chrono::system_clock::time_point time, LogLevel level,
                                   std::string_view msg, const LogFields& fields) {
  std::string line;
  line.reserve(96 + msg.size() + fields.extra_json().size());
  line += "{\"time\":\"";
  line += FormatTime(time);
  line += "\",\"level\":\"";
  line += LogLevelName(level);
  line += "\",\"msg\":";
  AppendJsonString(line, msg);
  if (fields.has_sandbox()) {
    line += ",\"sandbox\":";
    AppendJsonString(line, fields.sandbox());
  }
  line += fields.extra_json();
  line += "}\n";
  return line;
}

void JsonLogger::Log(LogLevel level, std::string_view msg, const LogFields& fields) {
  if (!Enabled(level)) return;
  std::string line = FormatLine(clock_(), level, msg, fields);
  std::lock_guard<std::mutex> lock(mu_);
  WriteAll(file_.valid() ? file_.get() : STDERR_FILENO, line);
}

}  // namespace kf::ops

// A small QMP (QEMU Machine Protocol) client for the peer benchmarks: JSON
// lines over a Unix socket, one command at a time, events kept aside.
//
// The JSON here is only what QMP needs (objects, arrays, strings, numbers,
// true/false/null); the repository has no JSON parser and this is too small
// to warrant one.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vmm-glue/result.h"
#include "vmm-glue/unique_fd.h"

namespace kf::peers {

// A parsed JSON value. Objects keep their keys sorted (QMP never relies on
// order); numbers are doubles, which holds every integer QMP sends us.
class JsonValue {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  JsonValue() = default;
  static JsonValue Bool(bool b);
  static JsonValue Number(double d);
  static JsonValue String(std::string s);
  static JsonValue Array(std::vector<JsonValue> items);
  static JsonValue Object(std::map<std::string, JsonValue> members);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_object() const { return type_ == Type::kObject; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_array() const { return type_ == Type::kArray; }

  bool bool_value() const { return bool_; }
  double number() const { return number_; }
  const std::string& str() const { return string_; }
  const std::vector<JsonValue>& items() const { return items_; }
  const std::map<std::string, JsonValue>& members() const { return members_; }

  // Member `key` of an object, or nullptr (also when this is not an object).
  const JsonValue* Find(const std::string& key) const;
  // Member `key` as a string; "" when absent or not a string.
  std::string GetString(const std::string& key) const;

  // Compact JSON text (for logs and error messages).
  std::string Dump() const;

 private:
  Type type_ = Type::kNull;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  std::vector<JsonValue> items_;
  std::map<std::string, JsonValue> members_;
};

// Parses one JSON document (surrounding whitespace allowed, nothing else).
Result<JsonValue> ParseJson(const std::string& text);

// What one QMP line is.
struct QmpMessage {
  enum class Kind { kGreeting, kReturn, kError, kEvent };
  Kind kind = Kind::kEvent;
  JsonValue body;           // greeting: the "QMP" member; return: "return"; error: "error"
  std::string event;        // kEvent: the event's name
  std::string error_class;  // kError: error.class
  std::string error_desc;   // kError: error.desc
  std::string id;           // kReturn/kError: the command's "id" when it was a string
};

// Classifies one line QEMU sent (without its line end).
Result<QmpMessage> ParseQmpLine(const std::string& line);

// The command line to send: {"execute": NAME} plus "arguments" when
// `arguments_json` (an object's JSON text) is not empty, plus "id" when `id`
// is not empty, and a newline.
std::string QmpCommandLine(const std::string& name, const std::string& arguments_json = "",
                           const std::string& id = "");

class QmpClient {
 public:
  // Connects to the socket at `path`, retrying until it accepts or
  // `timeout_ms` passes (QEMU creates it during start-up), then reads the
  // greeting and negotiates capabilities (qmp_capabilities) within
  // `handshake_timeout_ms` (default: `timeout_ms`). Give the handshake its
  // own, longer time when polling for the socket in short steps: a QEMU
  // slow to greet must not see one abandoned connection after another.
  static Result<QmpClient> Connect(const std::string& path, int timeout_ms,
                                   int handshake_timeout_ms = -1);
  // The same over an already connected socket (tests).
  static Result<QmpClient> Attach(UniqueFd fd, int timeout_ms);

  // Runs one command and returns its "return" value; an error reply
  // becomes an Error "NAME: CLASS: DESC". Events that arrive meanwhile are
  // kept (TakeEvents). Each command carries an id of its own and replies
  // with another id are skipped: QEMU 7.2 was seen (nested, 2026-11-29)
  // answering a qmp_capabilities of an abandoned earlier connection on the
  // next one, which made the reply to our own ("already complete") look
  // like the answer to the command after it.
  Result<JsonValue> Execute(const std::string& name, const std::string& arguments_json = "",
                            int timeout_ms = 10000);

  // Waits up to `timeout_ms` for one event to arrive (also returns at once
  // when one is already kept). Returns whether any is kept now.
  Result<bool> WaitEvent(int timeout_ms);
  std::vector<QmpMessage> TakeEvents();

  // The greeting's QEMU version, "major.minor.micro".
  const std::string& qemu_version() const { return version_; }
  int fd() const { return fd_.get(); }

 private:
  explicit QmpClient(UniqueFd fd) : fd_(std::move(fd)) {}
  // One non-empty line into *line: true; false when `timeout_ms` passed.
  Result<bool> ReadLine(int timeout_ms, std::string* line);
  Status Handshake(int timeout_ms);

  UniqueFd fd_;
  std::string buffer_;
  std::string version_;
  std::vector<QmpMessage> events_;
};

}  // namespace kf::peers

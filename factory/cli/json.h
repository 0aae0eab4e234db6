// Minimal JSON writer for --json output (objects, arrays, numbers, strings).
#pragma once

#include <cstdint>
#include <string>

namespace kf::cli {

class Json {
 public:
  Json& BeginObject();
  Json& EndObject();
  Json& BeginArray(const std::string& key = "");
  Json& EndArray();
  Json& Key(const std::string& key);
  Json& Str(const std::string& key, const std::string& v);
  Json& Num(const std::string& key, double v);
  Json& Uint(const std::string& key, uint64_t v);
  Json& Int(const std::string& key, int64_t v);
  Json& Bool(const std::string& key, bool v);
  Json& BeginObjectIn(const std::string& key);  // "key": {
  const std::string& str() const { return out_; }
  // A JSON string literal (factory/json_escape.h): escapes, and invalid
  // UTF-8 replaced by U+FFFD, so output stays parseable whatever it quotes.
  static std::string Quote(const std::string& s);

 private:
  void Sep();
  std::string out_;
  bool need_comma_ = false;
};

}  // namespace kf::cli

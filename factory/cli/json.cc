#include "factory/cli/json.h"

#include <cmath>
#include <cstdio>

#include "factory/json_escape.h"

namespace kf::cli {

std::string Json::Quote(const std::string& s) { return JsonString(s); }

void Json::Sep() {
  if (need_comma_) out_ += ",";
  need_comma_ = false;
}

Json& Json::Key(const std::string& key) {
  Sep();
  out_ += Quote(key) + ":";
  return *this;
}

Json& Json::BeginObject() {
  Sep();
  out_ += "{";
  return *this;
}
Json& Json::BeginObjectIn(const std::string& key) {
  Key(key);
  out_ += "{";
  return *this;
}
Json& Json::EndObject() {
  out_ += "}";
  need_comma_ = true;
  return *this;
}
Json& Json::BeginArray(const std::string& key) {
  if (key.empty()) Sep(); else Key(key);
  out_ += "[";
  return *this;
}
Json& Json::EndArray() {
  out_ += "]";
  need_comma_ = true;
  return *this;
}
Json& Json::Str(const std::string& key, const std::string& v) {
  Key(key);
  out_ += Quote(v);
  need_comma_ = true;
  return *this;
}
Json& Json::Num(const std::string& key, double v) {
  Key(key);
  char buf[64];
  if (std::isfinite(v)) std::snprintf(buf, sizeof buf, "%.15g", v);  // byte counts stay exact
  else std::snprintf(buf, sizeof buf, "null");
  out_ += buf;
  need_comma_ = true;
  return *this;
}
Json& Json::Uint(const std::string& key, uint64_t v) {
  Key(key);
  out_ += std::to_string(v);
  need_comma_ = true;
  return *this;
}
Json& Json::Int(const std::string& key, int64_t v) {
  Key(key);
  out_ += std::to_string(v);
  need_comma_ = true;
  return *this;
}
Json& Json::Bool(const std::string& key, bool v) {
  Key(key);
  out_ += v ? "true" : "false";
  need_comma_ = true;
  return *this;
}

}  // namespace kf::cli

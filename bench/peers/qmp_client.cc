#include "bench/peers/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>

#include "factory/cli/json.h"

namespace kf::peers {
namespace {

using Clock = std::chrono::steady_clock;

int MsLeft(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}

  Result<JsonValue> Document() {
    ASSIGN_OR_RETURN(JsonValue v, Value(0));
    SkipSpace();
    if (pos_ != s_.size()) return Fail("trailing characters");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 64;

  Error Fail(const std::string& what) const {
    return Error("JSON: " + what + " at offset " + std::to_string(pos_));
  }
  void SkipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool Literal(const char* word) {
    const size_t n = std::strlen(word);
    if (s_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }

  Result<JsonValue> Value(int depth) {
    if (depth > kMaxDepth) return Fail("nested too deeply");
    SkipSpace();
    if (pos_ >= s_.size()) return Fail("unexpected end");
    const char c = s_[pos_];
    if (c == '{') return ObjectValue(depth);
    if (c == '[') return ArrayValue(depth);
    if (c == '"') {
      ASSIGN_OR_RETURN(std::string str, StringValue());
      return JsonValue::String(std::move(str));
    }
    if (Literal("true")) return JsonValue::Bool(true);
    if (Literal("false")) return JsonValue::Bool(false);
    if (Literal("null")) return JsonValue();
    if (c == '-' || (c >= '0' && c <= '9')) return NumberValue();
    return Fail(std::string("unexpected character '") + c + "'");
  }

  Result<JsonValue> ObjectValue(int depth) {
    ++pos_;  // {
    std::map<std::string, JsonValue> members;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return JsonValue::Object(std::move(members));
    }
    while (true) {
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Fail("expected a key");
      ASSIGN_OR_RETURN(std::string key, StringValue());
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Fail("expected ':'");
      ++pos_;
      ASSIGN_OR_RETURN(JsonValue v, Value(depth + 1));
      members[std::move(key)] = std::move(v);
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return JsonValue::Object(std::move(members));
      }
      return Fail("expected ',' or '}'");
    }
  }

  Result<JsonValue> ArrayValue(int depth) {
    ++pos_;  // [
    std::vector<JsonValue> items;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return JsonValue::Array(std::move(items));
    }
    while (true) {
      ASSIGN_OR_RETURN(JsonValue v, Value(depth + 1));
      items.push_back(std::move(v));
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return JsonValue::Array(std::move(items));
      }
      return Fail("expected ',' or ']'");
    }
  }

  static void PutUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  Result<uint32_t> Hex4() {
    if (pos_ + 4 > s_.size()) return Fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9')
        v |= h - '0';
      else if (h >= 'a' && h <= 'f')
        v |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F')
        v |= h - 'A' + 10;
      else
        return Fail("bad \\u escape");
    }
    return v;
  }

  Result<std::string> StringValue() {
    ++pos_;  // "
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) return Fail("unterminated string");
      const char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) return Fail("control character in string");
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return Fail("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '/':
          out.push_back('/');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          ASSIGN_OR_RETURN(uint32_t cp, Hex4());
          if (cp >= 0xd800 && cp < 0xdc00 && s_.compare(pos_, 2, "\\u") == 0) {
            pos_ += 2;
            ASSIGN_OR_RETURN(uint32_t lo, Hex4());
            if (lo < 0xdc00 || lo >= 0xe000) return Fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          PutUtf8(cp, &out);
          break;
        }
        default:
          return Fail(std::string("bad escape \\") + e);
      }
    }
  }

  Result<JsonValue> NumberValue() {
    const size_t start = pos_;
    if (s_[pos_] == '-') ++pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ > from;
    };
    if (!digits()) return Fail("bad number");
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (!digits()) return Fail("bad number");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits()) return Fail("bad number");
    }
    return JsonValue::Number(std::strtod(s_.substr(start, pos_ - start).c_str(), nullptr));
  }

  const std::string& s_;
  size_t pos_ = 0;
};

}  // namespace

JsonValue JsonValue::Bool(bool b) {
  JsonValue v;
  v.type_ = Type::kBool;
  v.bool_ = b;
  return v;
}
JsonValue JsonValue::Number(double d) {
  JsonValue v;
  v.type_ = Type::kNumber;
  v.number_ = d;
  return v;
}
JsonValue JsonValue::String(std::string s) {
  JsonValue v;
  v.type_ = Type::kString;
  v.string_ = std::move(s);
  return v;
}
JsonValue JsonValue::Array(std::vector<JsonValue> items) {
  JsonValue v;
  v.type_ = Type::kArray;
  v.items_ = std::move(items);
  return v;
}
JsonValue JsonValue::Object(std::map<std::string, JsonValue> members) {
  JsonValue v;
  v.type_ = Type::kObject;
  v.members_ = std::move(members);
  return v;
}

const JsonValue* JsonValue::Find(const std::string& key) const {
  if (type_ != Type::kObject) return nullptr;
  auto it = members_.find(key);
  return it == members_.end() ? nullptr : &it->second;
}

std::string JsonValue::GetString(const std::string& key) const {
  const JsonValue* v = Find(key);
  return v != nullptr && v->is_string() ? v->str() : std::string();
}

std::string JsonValue::Dump() const {
  switch (type_) {
    case Type::kNull:
      return "null";
    case Type::kBool:
      return bool_ ? "true" : "false";
    case Type::kNumber: {
      char buf[32];
      if (std::fabs(number_) < 9e15 && number_ == std::floor(number_))
        std::snprintf(buf, sizeof buf, "%.0f", number_);
      else
        std::snprintf(buf, sizeof buf, "%.17g", number_);
      return buf;
    }
    case Type::kString:
      return cli::Json::Quote(string_);
    case Type::kArray: {
      std::string out = "[";
      for (size_t i = 0; i < items_.size(); ++i) out += (i ? "," : "") + items_[i].Dump();
      return out + "]";
    }
    case Type::kObject: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, v] : members_) {
        out += (first ? "" : ",") + cli::Json::Quote(k) + ":" + v.Dump();
        first = false;
      }
      return out + "}";
    }
  }
  return "null";
}

Result<JsonValue> ParseJson(const std::string& text) { return Parser(text).Document(); }

Result<QmpMessage> ParseQmpLine(const std::string& line) {
  auto parsed = ParseJson(line);
  if (!parsed.ok()) return parsed.error().Context("QMP line '" + line.substr(0, 200) + "'");
  const JsonValue& v = *parsed;
  if (!v.is_object()) return Error("QMP line is not an object: " + line.substr(0, 200));
  QmpMessage m;
  if (const JsonValue* id = v.Find("id"); id != nullptr && id->is_string()) m.id = id->str();
  if (const JsonValue* r = v.Find("return")) {
    m.kind = QmpMessage::Kind::kReturn;
    m.body = *r;
  } else if (const JsonValue* e = v.Find("error")) {
    m.kind = QmpMessage::Kind::kError;
    m.body = *e;
    m.error_class = e->GetString("class");
    m.error_desc = e->GetString("desc");
  } else if (const JsonValue* ev = v.Find("event"); ev != nullptr && ev->is_string()) {
    m.kind = QmpMessage::Kind::kEvent;
    m.event = ev->str();
    if (const JsonValue* d = v.Find("data")) m.body = *d;
  } else if (const JsonValue* g = v.Find("QMP")) {
    m.kind = QmpMessage::Kind::kGreeting;
    m.body = *g;
  } else {
    return Error("QMP line of no known kind: " + line.substr(0, 200));
  }
  return m;
}

std::string QmpCommandLine(const std::string& name, const std::string& arguments_json,
                           const std::string& id) {
  std::string out = "{\"execute\":" + cli::Json::Quote(name);
  if (!arguments_json.empty()) out += ",\"arguments\":" + arguments_json;
  if (!id.empty()) out += ",\"id\":" + cli::Json::Quote(id);
  return out + "}\n";
}

Result<QmpClient> QmpClient::Connect(const std::string& path, int timeout_ms,
                                     int handshake_timeout_ms) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) return Error("QMP socket path too long: " + path);
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Error::Sys("socket(AF_UNIX)");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0)
      return Attach(std::move(fd),
                    handshake_timeout_ms >= 0 ? handshake_timeout_ms : MsLeft(deadline) + 1);
    const int err = errno;
    if (err != ENOENT && err != ECONNREFUSED && err != EAGAIN)
      return Error::Sys("connect " + path, err);
    if (Clock::now() >= deadline)
      return Error("QMP socket " + path + " did not accept within " + std::to_string(timeout_ms) +
                   " ms");
    // QEMU creates the socket early in its start-up; poll it finely so the
    // connect time measures QEMU, not this loop.
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

Result<QmpClient> QmpClient::Attach(UniqueFd fd, int timeout_ms) {
  QmpClient c(std::move(fd));
  RETURN_IF_ERROR(c.Handshake(timeout_ms));
  return c;
}

Status QmpClient::Handshake(int timeout_ms) {
  std::string line;
  ASSIGN_OR_RETURN(bool got, ReadLine(timeout_ms, &line));
  if (!got) return Error("no QMP greeting within " + std::to_string(timeout_ms) + " ms");
  ASSIGN_OR_RETURN(QmpMessage m, ParseQmpLine(line));
  if (m.kind != QmpMessage::Kind::kGreeting)
    return Error("QMP: expected the greeting, got " + line);
  if (const JsonValue* ver = m.body.Find("version"))
    if (const JsonValue* q = ver->Find("qemu")) {
      auto part = [&](const char* k) {
        const JsonValue* n = q->Find(k);
        return n != nullptr && n->is_number() ? std::to_string(static_cast<long>(n->number()))
                                              : std::string("?");
      };
      version_ = part("major") + "." + part("minor") + "." + part("micro");
    }
  RETURN_IF_ERROR(Execute("qmp_capabilities", "", timeout_ms));
  return Status::Ok();
}

Result<bool> QmpClient::ReadLine(int timeout_ms, std::string* line) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    size_t nl;
    while ((nl = buffer_.find('\n')) != std::string::npos) {
      std::string l = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!l.empty() && l.back() == '\r') l.pop_back();
      if (!l.empty()) {
        *line = std::move(l);
        return true;
      }
    }
    if (buffer_.size() > (1u << 20)) return Error("QMP: line longer than 1 MiB");
    pollfd p{fd_.get(), POLLIN, 0};
    const int n = ::poll(&p, 1, MsLeft(deadline));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Sys("poll (QMP)");
    }
    if (n == 0) return false;
    char buf[4096];
    const ssize_t got = ::read(fd_.get(), buf, sizeof buf);
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Error::Sys("read (QMP)");
    }
    if (got == 0) return Error("QMP: QEMU closed the connection");
    buffer_.append(buf, static_cast<size_t>(got));
  }
}

Result<JsonValue> QmpClient::Execute(const std::string& name, const std::string& arguments_json,
                                     int timeout_ms) {
  // Unique in this process, so that no connection can take another's reply.
  static std::atomic<uint64_t> next_id{1};
  const std::string id = "kf-" + std::to_string(next_id++);
  const std::string out = QmpCommandLine(name, arguments_json, id);
  size_t sent = 0;
  while (sent < out.size()) {
    const ssize_t n = ::send(fd_.get(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Sys("QMP " + name + ": send");
    }
    sent += static_cast<size_t>(n);
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    std::string line;
    ASSIGN_OR_RETURN(bool got, ReadLine(MsLeft(deadline), &line));
    if (!got)
      return Error("QMP " + name + ": no reply within " + std::to_string(timeout_ms) + " ms");
    ASSIGN_OR_RETURN(QmpMessage m, ParseQmpLine(line));
    switch (m.kind) {
      case QmpMessage::Kind::kEvent:
        events_.push_back(std::move(m));
        continue;
      case QmpMessage::Kind::kReturn:
      case QmpMessage::Kind::kError:
        if (m.id != id) continue;  // not the answer to this command (see the header)
        if (m.kind == QmpMessage::Kind::kError)
          return Error("QMP " + name + ": " + m.error_class + ": " + m.error_desc);
        return std::move(m.body);
      case QmpMessage::Kind::kGreeting:
        return Error("QMP " + name + ": unexpected greeting");
    }
  }
}

Result<bool> QmpClient::WaitEvent(int timeout_ms) {
  if (!events_.empty()) return true;
  std::string line;
  ASSIGN_OR_RETURN(bool got, ReadLine(timeout_ms, &line));
  if (!got) return false;
  ASSIGN_OR_RETURN(QmpMessage m, ParseQmpLine(line));
  if (m.kind != QmpMessage::Kind::kEvent)
    return Error("QMP: a reply with no command outstanding: " + line.substr(0, 200));
  events_.push_back(std::move(m));
  return true;
}

std::vector<QmpMessage> QmpClient::TakeEvents() { return std::exchange(events_, {}); }

}  // namespace kf::peers

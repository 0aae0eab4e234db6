#include "factory/daemon/ops/config_keys.h"

#include <charconv>
#include <cmath>
#include <functional>
#include <map>

#include "factory/daemon/ops/byte_size.h"

namespace kf::ops {
namespace {

using Kind = ConfigValue::Kind;

std::string Describe(const ConfigValue& v) {
  switch (v.kind) {
    case Kind::kText:
      return "\"" + v.str + "\"";
    case Kind::kString:
      return "string \"" + v.str + "\"";
    case Kind::kInteger:
      return "integer " + std::to_string(v.integer);
    case Kind::kFloat:
      return "float";
    case Kind::kBool:
      return v.boolean ? "true" : "false";
    case Kind::kOther:
      return v.other_type;
  }
  return "?";
}

Result<std::string> AsString(const ConfigValue& v) {
  if (v.kind == Kind::kText || v.kind == Kind::kString) return v.str;
  return Error("expected a string, got " + Describe(v));
}

Result<uint64_t> AsCount(const ConfigValue& v) {
  if (v.kind == Kind::kInteger) {
    if (v.integer < 0) return Error("must be >= 0, got " + std::to_string(v.integer));
    return static_cast<uint64_t>(v.integer);
  }
  if (v.kind == Kind::kText) {
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(v.str.data(), v.str.data() + v.str.size(), n);
    if (!v.str.empty() && ec == std::errc() && end == v.str.data() + v.str.size()) return n;
  }
  return Error("expected a non-negative integer, got " + Describe(v));
}

Result<double> AsRate(const ConfigValue& v) {
  double d = 0;
  if (v.kind == Kind::kInteger) {
    d = static_cast<double>(v.integer);
  } else if (v.kind == Kind::kFloat) {
    d = v.number;
  } else if (v.kind == Kind::kText) {
    auto [end, ec] = std::from_chars(v.str.data(), v.str.data() + v.str.size(), d);
    if (v.str.empty() || ec != std::errc() || end != v.str.data() + v.str.size())
      return Error("expected a number, got " + Describe(v));
  } else {
    return Error("expected a number, got " + Describe(v));
  }
  if (!std::isfinite(d) || d < 0) return Error("must be a finite number >= 0");
  return d;
}

Result<bool> AsBool(const ConfigValue& v) {
  if (v.kind == Kind::kBool) return v.boolean;
  if (v.kind == Kind::kText) {
    if (v.str == "true" || v.str == "1" || v.str == "yes") return true;
    if (v.str == "false" || v.str == "0" || v.str == "no") return false;
  }
  return Error("expected true or false, got " + Describe(v));
}

// A size: an integer of bytes, or a string such as "2G".
Result<uint64_t> AsSize(const ConfigValue& v) {
  if (v.kind == Kind::kInteger) return AsCount(v);
  if (v.kind == Kind::kText || v.kind == Kind::kString) return ParseByteSize(v.str);
  return Error("expected bytes or a size such as \"2G\", got " + Describe(v));
}

template <typename T, typename Conv>
Status Assign(T& field, const ConfigValue& v, Conv conv) {
  auto r = conv(v);
  if (!r.ok()) return r.error();
  field = std::move(r).value();
  return Status::Ok();
}

using TopSetter = std::function<Status(DaemonConfig&, const ConfigValue&)>;
using TplSetter = std::function<Status(TemplateConfig&, const ConfigValue&)>;

const std::map<std::string, TopSetter>& TopSetters() {
  static const auto* m = new std::map<std::string, TopSetter>{
      {"socket",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.socket, v, AsString); }},
      {"run_dir",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.run_dir, v, AsString); }},
      {"state_dir",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.state_dir, v, AsString); }},
      {"tcp_listen",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.tcp_listen, v, AsString); }},
      {"metrics_listen",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.metrics_listen, v, AsString); }},
      {"log_level",
       [](DaemonConfig& c, const ConfigValue& v) {
         return Assign(c.log_level, v, [](const ConfigValue& x) -> Result<LogLevel> {
           ASSIGN_OR_RETURN(std::string s, AsString(x));
           return ParseLogLevel(s);
         });
       }},
      {"log_file",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.log_file, v, AsString); }},
      {"max_live_vms",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.max_live_vms, v, AsCount); }},
      {"mem_floor",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.mem_floor_bytes, v, AsSize); }},
      {"lease_seconds",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.lease_seconds, v, AsCount); }},
      {"guest_dir",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.guest_dir, v, AsString); }},
      {"pool_size",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.pool_size, v, AsCount); }},
      {"refill_per_second",
       [](DaemonConfig& c, const ConfigValue& v) {
         return Assign(c.refill_per_second, v, AsRate);
       }},
      {"mergeable",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.mergeable, v, AsBool); }},
      {"seccomp",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.seccomp, v, AsString); }},
      {"cgroup",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.cgroup, v, AsString); }},
      {"sandbox_uids",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.sandbox_uids, v, AsString); }},
      {"sandbox_memory_headroom",
       [](DaemonConfig& c, const ConfigValue& v) {
         return Assign(c.sandbox_memory_headroom_bytes, v, AsSize);
       }},
      {"sandbox_pids_max",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.sandbox_pids_max, v, AsCount); }},
      {"drop_capabilities",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.drop_capabilities, v, AsBool); }},
      {"kvm_nx_huge_pages",
       [](DaemonConfig& c, const ConfigValue& v) { return Assign(c.kvm_nx_huge_pages, v, AsString); }},
  };
  return *m;
}

const std::map<std::string, TplSetter>& TplSetters() {
  static const auto* m = new std::map<std::string, TplSetter>{
      {"path", [](TemplateConfig& t, const ConfigValue& v) { return Assign(t.path, v, AsString); }},
      {"guest",
       [](TemplateConfig& t, const ConfigValue& v) { return Assign(t.guest, v, AsString); }},
      {"mem_mib",
       [](TemplateConfig& t, const ConfigValue& v) { return Assign(t.mem_mib, v, AsCount); }},
      {"pool_size",
       [](TemplateConfig& t, const ConfigValue& v) { return Assign(t.pool_size, v, AsCount); }},
      {"refill_per_second",
       [](TemplateConfig& t, const ConfigValue& v) {
         return Assign(t.refill_per_second, v, AsRate);
       }},
      {"mergeable",
       [](TemplateConfig& t, const ConfigValue& v) { return Assign(t.mergeable, v, AsBool); }},
  };
  return *m;
}

template <typename Map>
std::vector<std::string> KeysOf(const Map& m) {
  std::vector<std::string> keys;
  for (const auto& [k, _] : m) keys.push_back(k);
  return keys;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

const std::vector<std::string>& TopLevelKeys() {
  static const auto* keys = new std::vector<std::string>(KeysOf(TopSetters()));
  return *keys;
}

const std::vector<std::string>& TemplateKeys() {
  static const auto* keys = new std::vector<std::string>(KeysOf(TplSetters()));
  return *keys;
}

Status SetConfigKey(DaemonConfig& config, std::string_view key, const ConfigValue& value) {
  auto it = TopSetters().find(std::string(key));
  if (it == TopSetters().end())
    return Error("unknown key \"" + std::string(key) + "\" (known: " + Join(TopLevelKeys()) +
                 ", [templates.NAME])");
  Status s = it->second(config, value);
  if (!s.ok()) return s.error().Context(std::string(key));
  return Status::Ok();
}

Status SetTemplateKey(DaemonConfig& config, const std::string& name, std::string_view key,
                      const ConfigValue& value) {
  std::string full = "templates." + name + "." + std::string(key);
  RETURN_IF_ERROR(ValidateTemplateName(name));
  auto it = TplSetters().find(std::string(key));
  if (it == TplSetters().end())
    return Error("unknown key \"" + full + "\" (a template has: " + Join(TemplateKeys()) + ")");
  Status s = it->second(config.templates[name], value);
  if (!s.ok()) return s.error().Context(full);
  return Status::Ok();
}

}  // namespace kf::ops

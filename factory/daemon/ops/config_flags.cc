#include "factory/daemon/ops/config_flags.h"

#include <utility>

#include "factory/daemon/ops/config_file.h"
#include "factory/daemon/ops/config_keys.h"

namespace kf::ops {
namespace {

std::string Underscores(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c == '-') c = '_';
  return out;
}

// "--key value" / "--key=value" pairs, in order.
Result<std::vector<std::pair<std::string, std::string>>> SplitFlags(
    const std::vector<std::string>& args) {
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() < 3 || a.compare(0, 2, "--") != 0)
      return Error("unexpected argument \"" + a + "\" (want --key value)");
    size_t eq = a.find('=');
    if (eq != std::string::npos) {
      out.emplace_back(a.substr(2, eq - 2), a.substr(eq + 1));
    } else {
      if (i + 1 >= args.size()) return Error(a + ": needs a value");
      out.emplace_back(a.substr(2), args[++i]);
    }
  }
  return out;
}

}  // namespace

Status ApplyConfigOverride(DaemonConfig& config, std::string_view key, std::string_view value) {
  std::string k = Underscores(key);
  ConfigValue v = ConfigValue::Text(std::string(value));
  if (k.compare(0, 10, "templates.") == 0) {
    std::string rest = k.substr(10);
    size_t dot = rest.rfind('.');
    if (dot == std::string::npos || dot == 0)
      return Error("\"" + std::string(key) + "\": want templates.NAME.KEY");
    // Names keep their own spelling ('-' is allowed in a name): take it from `key`.
    std::string name(key.substr(10, dot));
    return SetTemplateKey(config, name, rest.substr(dot + 1), v);
  }
  return SetConfigKey(config, k, v);
}

Result<DaemonConfig> DaemonConfigFromArgs(const std::vector<std::string>& args) {
  ASSIGN_OR_RETURN(auto flags, SplitFlags(args));
  DaemonConfig config;
  const std::string* config_path = nullptr;
  for (const auto& [key, value] : flags) {
    if (key != "config") continue;
    if (config_path != nullptr) return Error("--config: given twice");
    config_path = &value;
  }
  if (config_path != nullptr) {
    ASSIGN_OR_RETURN(config, LoadDaemonConfig(*config_path));
  }
  for (const auto& [key, value] : flags) {
    if (key == "config") continue;
    Status s = ApplyConfigOverride(config, key, value);
    if (!s.ok()) return s.error().Context("--" + key);
  }
  RETURN_IF_ERROR(ValidateDaemonConfig(config));
  return config;
}

}  // namespace kf::ops

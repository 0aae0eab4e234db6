// The config's keys, one table for both sources: the TOML file gives typed
// values, flags give text. Each key's setter checks and converts either.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "factory/daemon/ops/daemon_config.h"
#include "vmm-glue/result.h"

namespace kf::ops {

struct ConfigValue {
  enum class Kind { kText, kString, kInteger, kFloat, kBool, kOther };
  Kind kind = Kind::kText;  // kText: from a flag, parsed by the key's type
  std::string str;          // kText, kString
  int64_t integer = 0;
  double number = 0;
  bool boolean = false;
  std::string other_type;  // kOther: the TOML type's name ("array", "date", ...)

  static ConfigValue Text(std::string s) { return {Kind::kText, std::move(s)}; }
};

// Sets a top-level key ("socket", "max_live_vms", ...). Errors say
// "KEY: why"; an unknown key lists the known ones.
Status SetConfigKey(DaemonConfig& config, std::string_view key, const ConfigValue& value);

// Sets a key of [templates.NAME] ("path", "pool_size", ...), creating the
// template when it is new. Errors say "templates.NAME.KEY: why".
Status SetTemplateKey(DaemonConfig& config, const std::string& name, std::string_view key,
                      const ConfigValue& value);

// The top-level keys and the template keys, for messages and docs.
const std::vector<std::string>& TopLevelKeys();
const std::vector<std::string>& TemplateKeys();

}  // namespace kf::ops

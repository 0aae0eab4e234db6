#include "factory/daemon/ops/config_file.h"

#include <toml++/toml.h>

#include <fstream>
#include <sstream>

#include "factory/daemon/ops/config_keys.h"
#include "factory/daemon/ops/sys_error.h"

namespace kf::ops {
namespace {

std::string At(const std::string& file, const toml::source_region& where) {
  return file + ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column);
}

ConfigValue FromNode(const toml::node& node) {
  ConfigValue v;
  switch (node.type()) {
    case toml::node_type::string:
      v.kind = ConfigValue::Kind::kString;
      v.str = node.as_string()->get();
      break;
    case toml::node_type::integer:
      v.kind = ConfigValue::Kind::kInteger;
      v.integer = node.as_integer()->get();
      break;
    case toml::node_type::floating_point:
      v.kind = ConfigValue::Kind::kFloat;
      v.number = node.as_floating_point()->get();
      break;
    case toml::node_type::boolean:
      v.kind = ConfigValue::Kind::kBool;
      v.boolean = node.as_boolean()->get();
      break;
    default: {
      v.kind = ConfigValue::Kind::kOther;
      std::ostringstream name;
      name << node.type();
      v.other_type = name.str();
    }
  }
  return v;
}

Status LoadTemplates(DaemonConfig& config, const toml::node& node, const std::string& file) {
  const toml::table* templates = node.as_table();
  if (templates == nullptr)
    return Error(At(file, node.source()) + ": templates: expected tables [templates.NAME]");
  for (const auto& [name_key, tpl_node] : *templates) {
    std::string name(name_key.str());
    const toml::table* tpl = tpl_node.as_table();
    if (tpl == nullptr)
      return Error(At(file, name_key.source()) + ": templates." + name +
                   ": expected a table [templates." + name + "]");
    Status named = ValidateTemplateName(name);
    if (!named.ok()) return named.error().Context(At(file, name_key.source()));
    TemplateConfig& t = config.templates[name];
    t.where = file + ":" + std::to_string(tpl_node.source().begin.line);
    for (const auto& [key, value] : *tpl) {
      Status s = SetTemplateKey(config, name, key.str(), FromNode(value));
      if (!s.ok()) return s.error().Context(At(file, value.source()));
    }
  }
  return Status::Ok();
}

}  // namespace

Result<DaemonConfig> ParseDaemonConfig(std::string_view text, const std::string& source_name) {
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    return Error(At(source_name, e.source()) + ": " + std::string(e.description()));
  }
  DaemonConfig config;
  config.source = source_name;
  for (const auto& [key, value] : root) {
    Status s = key.str() == "templates" ? LoadTemplates(config, value, source_name)
                                        : SetConfigKey(config, key.str(), FromNode(value));
    if (!s.ok()) {
      // Errors from LoadTemplates already carry their own position.
      if (key.str() == "templates") return s.error();
      return s.error().Context(At(source_name, value.source()));
    }
  }
  return config;
}

Result<DaemonConfig> LoadDaemonConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return SysError("reading config " + path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return SysError("reading config " + path);
  return ParseDaemonConfig(text.str(), path);
}

}  // namespace kf::ops

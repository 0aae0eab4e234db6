#include "factory/cli/args.h"

#include <cerrno>
#include <cstdlib>

namespace kf::cli {

Result<Args> Args::Parse(const std::vector<std::string>& argv,
                         const std::set<std::string>& flags,
                         const std::set<std::string>& options) {
  Args a;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      a.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (flags.count(name)) {
      if (has_value) return Error("--" + name + " takes no value");
      a.values_[name] = "1";
    } else if (options.count(name)) {
      if (!has_value) {
        if (i + 1 >= argv.size()) return Error("--" + name + " needs a value");
        value = argv[++i];
      }
      a.values_[name] = value;
    } else {
      return Error("unknown option --" + name + " (see --help)");
    }
  }
  return a;
}

std::string Args::Get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

Result<uint64_t> Args::GetUint(const std::string& name, uint64_t fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  const std::string& s = it->second;
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 0);
  if (s.empty() || s[0] == '-' || *end != '\0' || errno != 0)
    return Error("--" + name + " wants a non-negative integer, not '" + s + "'");
  return static_cast<uint64_t>(v);
}

}  // namespace kf::cli

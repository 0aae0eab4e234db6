#include "factory/cli/args.h"

#include <cerrno>
#include <cstdlib>

namespace kf::cli {

Result<ParsedOption> ParseOption(const std::vector<std::string>& argv, size_t* i,
                                 const std::set<std::string>& flags,
                                 const std::set<std::string>& options) {
  ParsedOption o;
  o.name = argv[*i].substr(2);
  bool has_value = false;
  if (auto eq = o.name.find('='); eq != std::string::npos) {
    o.value = o.name.substr(eq + 1);
    o.name = o.name.substr(0, eq);
    has_value = true;
  }
  if (flags.count(o.name)) {
    if (has_value) return Error("--" + o.name + " takes no value");
    o.value = "1";
  } else if (options.count(o.name)) {
    if (!has_value) {
      if (*i + 1 >= argv.size()) return Error("--" + o.name + " needs a value");
      o.value = argv[++*i];
    }
  } else {
    return Error("unknown option --" + o.name + " (see --help)");
  }
  return o;
}

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
    ASSIGN_OR_RETURN(ParsedOption o, ParseOption(argv, &i, flags, options));
    a.values_[o.name] = o.value;
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

// A small command-line parser for the kata-factory verbs: --flag, --key V,
// --key=V and positional arguments. Unknown flags are errors, never ignored.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "vmm-glue/result.h"

namespace kf::cli {

// One option at argv[*i], which starts with "--" and is not "--":
// "--name", "--name=value" or "--name value", checked against `flags` (no
// value; reads as "1") and `options` (one value, the next argument when not
// given with '='). *i is left on the last argument used.
struct ParsedOption {
  std::string name, value;
};
Result<ParsedOption> ParseOption(const std::vector<std::string>& argv, size_t* i,
                                 const std::set<std::string>& flags,
                                 const std::set<std::string>& options);

class Args {
 public:
  // `flags` take no value; `options` take one.
  static Result<Args> Parse(const std::vector<std::string>& argv,
                            const std::set<std::string>& flags,
                            const std::set<std::string>& options);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  Result<uint64_t> GetUint(const std::string& name, uint64_t fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace kf::cli

// The daemon's templates: by name, those it made under STATE/templates/<name>/
// (CreateTemplate) and those named in its configuration (any directory).
// A directory named <name> under STATE/templates is always a complete
// template: WriteTemplate builds it under a temporary name and renames it.
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "vmm-glue/result.h"

namespace kf::daemon {

struct TemplateEntry {
  std::string name;
  std::string dir;
  bool external = false;  // from the configuration: never deleted by the daemon
  // From state.bin, filled by Describe(): empty kind and `error` set when the
  // directory is not a valid template.
  std::string guest_kind;
  uint64_t mem_bytes = 0;
  uint32_t vcpus = 0;
  int64_t created_unix_ns = 0;
  std::string error;
};

// [A-Za-z0-9_.-]{1,64} not starting with "." (ops::ValidateTemplateName, and
// no hidden names, which the registry keeps for its own leftovers):
// names become directory names and metric labels.
bool ValidTemplateName(const std::string& name);

class TemplateRegistry {
 public:
  TemplateRegistry(std::string state_dir, std::map<std::string, std::string> external);
  // Creates STATE/templates (0700) if missing and removes what an
  // interrupted CreateTemplate or DeleteTemplate left there.
  Status Init();

  std::string DirFor(const std::string& name) const;  // STATE/templates/<name>
  std::optional<TemplateEntry> Find(const std::string& name) const;
  // Every template, sorted by name, each described (state.bin read).
  std::vector<TemplateEntry> List() const;
  // Reads state.bin: guest kind, memory size, creation time (or error).
  static void Describe(TemplateEntry& entry);

  // Reserves a name for a template being created (false: taken or being
  // created); Unreserve when done, whatever the outcome.
  bool Reserve(const std::string& name);
  void Unreserve(const std::string& name);
  // Removes STATE/templates/<name> (renamed away first, so it is never seen
  // half-deleted). External templates are refused.
  Status Remove(const std::string& name);

 private:
  std::string templates_dir_;
  std::map<std::string, std::string> external_;
  mutable std::mutex mu_;
  std::map<std::string, bool> reserved_;
};

}  // namespace kf::daemon

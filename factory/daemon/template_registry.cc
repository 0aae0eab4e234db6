#include "factory/daemon/template_registry.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "snapshot/template_files.h"

namespace kf::daemon {

namespace fs = std::filesystem;

namespace {
constexpr char kDeletingPrefix[] = ".deleting-";
}

bool ValidTemplateName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

TemplateRegistry::TemplateRegistry(std::string state_dir,
                                   std::map<std::string, std::string> external)
    : templates_dir_(std::move(state_dir) + "/templates"), external_(std::move(external)) {}

Status TemplateRegistry::Init() {
  std::error_code ec;
  fs::create_directories(templates_dir_, ec);
  if (ec) return Error("mkdir " + templates_dir_ + ": " + ec.message());
  ::chmod(templates_dir_.c_str(), 0700);
  // Leftovers: "<name>.tmp-<pid>" (WriteTemplate interrupted) and
  // ".deleting-<name>" (Remove interrupted).
  for (const auto& e : fs::directory_iterator(templates_dir_, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(kDeletingPrefix, 0) == 0 || n.find(".tmp-") != std::string::npos)
      fs::remove_all(e.path(), ec);
  }
  return Status::Ok();
}

std::string TemplateRegistry::DirFor(const std::string& name) const {
  return templates_dir_ + "/" + name;
}

std::optional<TemplateEntry> TemplateRegistry::Find(const std::string& name) const {
  if (!ValidTemplateName(name)) return std::nullopt;
  if (auto it = external_.find(name); it != external_.end())
    return TemplateEntry{.name = name, .dir = it->second, .external = true};
  const std::string dir = DirFor(name);
  struct stat st;
  if (::stat((dir + "/" + kStateFileName).c_str(), &st) != 0) return std::nullopt;
  return TemplateEntry{.name = name, .dir = dir};
}

std::vector<TemplateEntry> TemplateRegistry::List() const {
  std::map<std::string, TemplateEntry> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(templates_dir_, ec)) {
    const std::string n = e.path().filename().string();
    if (!ValidTemplateName(n) || n.find(".tmp-") != std::string::npos) continue;
    if (auto t = Find(n)) found[n] = *t;
  }
  for (const auto& [name, dir] : external_)
    found[name] = TemplateEntry{.name = name, .dir = dir, .external = true};
  std::vector<TemplateEntry> out;
  for (auto& [name, t] : found) {
    Describe(t);
    out.push_back(std::move(t));
  }
  return out;
}

void TemplateRegistry::Describe(TemplateEntry& t) {
  auto state = ReadTemplateState(t.dir);
  if (!state.ok()) {
    t.error = state.error().message();
    return;
  }
  t.guest_kind = state->guest_kind;
  t.mem_bytes = state->mem_size;
  t.vcpus = static_cast<uint32_t>(state->vcpus.size());
  t.created_unix_ns = state->created_unix_ns;
}

bool TemplateRegistry::Reserve(const std::string& name) {
  std::lock_guard lock(mu_);
  if (reserved_.count(name) || external_.count(name)) return false;
  reserved_[name] = true;
  return true;
}

void TemplateRegistry::Unreserve(const std::string& name) {
  std::lock_guard lock(mu_);
  reserved_.erase(name);
}

Status TemplateRegistry::Remove(const std::string& name) {
  if (external_.count(name))
    return Error("template " + name + " comes from the configuration; remove it there");
  const std::string dir = DirFor(name);
  const std::string doomed = templates_dir_ + "/" + kDeletingPrefix + name;
  if (::rename(dir.c_str(), doomed.c_str()) < 0) return Error::Sys("rename " + dir);
  std::error_code ec;
  fs::remove_all(doomed, ec);
  if (ec) return Error("remove " + doomed + ": " + ec.message());
  return Status::Ok();
}

}  // namespace kf::daemon

#include "factory/daemon/zygote_set.h"

namespace kf::daemon {

std::shared_ptr<ZygoteSet::Entry> ZygoteSet::Get(const std::string& tmpl) {
  std::lock_guard lock(mu_);
  auto& e = entries_[tmpl];
  if (!e) e = std::make_shared<Entry>();
  return e;
}

Result<CloneHandle> ZygoteSet::Clone(const std::string& tmpl, const std::string& dir,
                                     const SandboxOptions& options) {
  auto entry = Get(tmpl);
  std::lock_guard lock(entry->mu);
  for (int attempt = 0;; ++attempt) {
    if (!entry->zygote || entry->zygote->Exited()) {
      entry->zygote.reset();  // reaps a dead one
      auto z = Zygote::SpawnProcess(exe_, dir, extra_args_);
      if (!z.ok()) return z.error().Context("starting the zygote of " + tmpl);
      entry->zygote = std::make_unique<Zygote>(std::move(*z));
    }
    auto clone = entry->zygote->Clone(options);
    if (clone.ok() || attempt > 0 || !entry->zygote->Exited()) return clone;
    // The zygote died under us (killed, or crashed on this request): once more.
  }
}

void ZygoteSet::Stop(const std::string& tmpl) {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(tmpl);
    if (it == entries_.end()) return;
    e = it->second;
    entries_.erase(it);
  }
  std::lock_guard lock(e->mu);
  e->zygote.reset();
}

void ZygoteSet::StopAll() {
  std::map<std::string, std::shared_ptr<Entry>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(entries_);
  }
  for (auto& [name, e] : all) {
    std::lock_guard lock(e->mu);
    e->zygote.reset();
  }
}

std::vector<pid_t> ZygoteSet::Pids() {
  std::vector<pid_t> pids;
  std::lock_guard lock(mu_);
  for (auto& [name, e] : entries_) {
    std::lock_guard entry_lock(e->mu);
    if (e->zygote) pids.push_back(e->zygote->pid());
  }
  return pids;
}

}  // namespace kf::daemon

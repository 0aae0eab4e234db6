// One zygote per template, started as a fresh process on first use
// (Zygote::SpawnProcess: posix_spawn of `kata-factory zygote`, never a fork
// of the multi-threaded daemon) and started again if it died. Clone requests
// to one zygote are serialised (its socket carries one request at a time);
// different templates clone in parallel.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "factory/zygote.h"

namespace kf::daemon {

class ZygoteSet {
 public:
  // `exe`: the kata-factory binary; `extra_args` go on every zygote's
  // command line (the daemon adds --run-dir RUN, see run_dir.h).
  ZygoteSet(std::string exe, std::vector<std::string> extra_args)
      : exe_(std::move(exe)), extra_args_(std::move(extra_args)) {}

  // Clones one sandbox of template `tmpl` (directory `dir`), starting its
  // zygote first if needed (that loads the template: seconds for a large
  // one) and once more if the zygote had died.
  Result<CloneHandle> Clone(const std::string& tmpl, const std::string& dir,
                            const SandboxOptions& options);
  // Stops (and reaps) the template's zygote; its sandboxes live on.
  void Stop(const std::string& tmpl);
  void StopAll();
  std::vector<pid_t> Pids();

 private:
  struct Entry {
    std::mutex mu;
    std::unique_ptr<Zygote> zygote;  // guarded by mu
  };
  std::shared_ptr<Entry> Get(const std::string& tmpl);

  const std::string exe_;
  const std::vector<std::string> extra_args_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;
};

}  // namespace kf::daemon

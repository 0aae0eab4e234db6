// Where the daemon core (factory/daemon) meets its operations pieces
// (factory/daemon/ops): the TOML config (with flags over it) becomes
// DaemonOptions, the core's log hook writes JSON lines, its GetVM and clone
// hooks feed the Prometheus metrics, and GET /metrics refreshes the gauges
// from the core's status. `kata-factory daemon` is this plus signals
// (factory/cli/cmd_daemon.cc); docs/OPERATIONS.md is the operator's view.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "factory/daemon/daemon_options.h"
#include "factory/daemon/daemon_server.h"
#include "factory/daemon/ops/daemon_config.h"
#include "factory/daemon/ops/factory_metrics.h"
#include "factory/daemon/ops/json_logger.h"
#include "factory/daemon/ops/metrics.h"
#include "factory/daemon/ops/metrics_http.h"
#include "vmm-glue/result.h"

namespace kf::daemon {

// The config as DaemonOptions (hooks left empty): max_live_vms 0 is no cap
// (nullopt); [templates.NAME] with `path` -> external_templates, with
// `guest` -> startup_templates, and its pool keys -> pools[NAME]; the
// top-level pool keys -> default_pool. Errors name the key (a value out of
// the core's range, a name the core refuses). guest_dir is taken as is
// ("" stays ""; the caller may fall back to $KF_GUEST_DIR).
Result<DaemonOptions> DaemonOptionsFromConfig(const ops::DaemonConfig& config);

// The daemon's older flag spellings, rewritten as config flags:
// `--mem-floor-mib M` -> `--mem-floor <M MiB in bytes>`, `--no-mergeable`
// -> `--mergeable false`. Everything else passes through unchanged.
Result<std::vector<std::string>> ExpandDaemonFlagAliases(const std::vector<std::string>& args);

// The gRPC status code's name, as katafactory_getvm_total{code} has it.
const char* StatusCodeName(grpc::StatusCode code);

// The logger, the metrics registry and the /metrics server, and the hooks
// that feed them. Outlives the Daemon whose hooks point at it.
class OpsBridge {
 public:
  // Opens the log (config.log_file, or stderr) and registers the metrics.
  // Starts no thread.
  static Result<std::unique_ptr<OpsBridge>> Create(const ops::DaemonConfig& config);
  ~OpsBridge();  // stops the /metrics server

  // Hooks that write through the logger and into the metrics.
  DaemonHooks Hooks();
  // Serves GET /metrics on config.metrics_listen (a no-op when it is "").
  // Warns (logs) when the address is not loopback: there is no
  // authentication. Starts a thread: block signals first.
  Status StartMetrics();
  // The core the gauges are read from; nullptr detaches (waiting for a
  // scrape in progress). Detach before the core goes away.
  void Attach(FactoryCore* core);
  // The body of GET /metrics: gauges refreshed from the core when the last
  // refresh is older than `gauge_ttl` (so scrapes cost at most one Status,
  // one ListVMs and a bounded number of smaps_rollup reads a second), then
  // everything rendered.
  std::string RenderMetrics();
  // Reopens the log file (after logrotate moved it: SIGHUP). Stderr: no-op.
  Status ReopenLog();

  uint16_t metrics_port() const { return http_ ? http_->port() : 0; }
  ops::JsonLogger& logger() { return *logger_; }
  ops::MetricsRegistry& registry() { return registry_; }
  void set_gauge_ttl(std::chrono::milliseconds ttl) { gauge_ttl_ = ttl; }

  // At most this many VMs of a template are read for its average Pss.
  static constexpr size_t kMaxPssSamplesPerTemplate = 16;

 private:
  explicit OpsBridge(const ops::DaemonConfig& config, std::unique_ptr<ops::JsonLogger> logger);
  void RefreshGaugesLocked();

  const std::string metrics_listen_;
  std::unique_ptr<ops::JsonLogger> logger_;
  ops::MetricsRegistry registry_;
  ops::FactoryMetrics metrics_;
  std::unique_ptr<ops::MetricsHttpServer> http_;

  std::mutex mu_;                // guards what follows; held through a refresh
  FactoryCore* core_ = nullptr;
  std::chrono::milliseconds gauge_ttl_{1000};
  std::chrono::steady_clock::time_point refreshed_at_{};
  bool refreshed_ = false;
  std::set<std::string> pool_series_, memory_series_;  // template labels shown
};

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(const std::string& host);

}  // namespace kf::daemon

#include "factory/daemon/ops_bridge.h"

#include <charconv>
#include <map>

#include "factory/daemon/ops/host_port.h"
#include "factory/daemon/template_registry.h"
#include "memshare/accounting.h"

namespace kf::daemon {

namespace {

constexpr uint64_t kMaxPoolSize = 100000;

Result<PoolOptions> PoolFrom(const std::string& key, uint64_t size, double rate, bool mergeable) {
  if (size > kMaxPoolSize)
    return Error(key + "pool_size: " + std::to_string(size) + " is over " +
                 std::to_string(kMaxPoolSize));
  return PoolOptions{static_cast<uint32_t>(size), rate, mergeable};
}

ops::LogLevel LevelOf(LogSeverity s) {
  switch (s) {
    case LogSeverity::kDebug: return ops::LogLevel::kDebug;
    case LogSeverity::kInfo: return ops::LogLevel::kInfo;
    case LogSeverity::kWarn: return ops::LogLevel::kWarn;
    case LogSeverity::kError: return ops::LogLevel::kError;
  }
  return ops::LogLevel::kError;
}

std::string Underscored(std::string s) {
  for (char& c : s)
    if (c == '-') c = '_';
  return s;
}

}  // namespace

// ---- Config -> options --------------------------------------------------------

Result<DaemonOptions> DaemonOptionsFromConfig(const ops::DaemonConfig& c) {
  DaemonOptions o;
  o.socket = c.socket;
  o.run_dir = c.run_dir;
  o.state_dir = c.state_dir;
  o.tcp_listen = c.tcp_listen;
  o.guest_dir = c.guest_dir;
  // The config's 0 is "no cap"; the core's 0 would be a cap of zero VMs.
  if (c.max_live_vms == 0) o.max_live_vms.reset();
  else o.max_live_vms = c.max_live_vms;
  o.mem_floor_bytes = c.mem_floor_bytes;
  if (c.lease_seconds > UINT32_MAX)
    return Error("lease_seconds: " + std::to_string(c.lease_seconds) + " is over " +
                 std::to_string(UINT32_MAX));
  o.default_lease_seconds = static_cast<uint32_t>(c.lease_seconds);
  ASSIGN_OR_RETURN(o.default_pool, PoolFrom("", c.pool_size, c.refill_per_second, c.mergeable));
  auto seccomp = ParseSeccompMode(c.seccomp);
  if (!seccomp) return Error("seccomp: '" + c.seccomp + "' is not enforce, log or off");
  o.jail.seccomp = *seccomp;
  o.jail.drop_capabilities = c.drop_capabilities;
  auto cgroup = ParseCgroupMode(c.cgroup);
  if (!cgroup) return Error("cgroup: '" + c.cgroup + "' is not auto, off or required");
  o.cgroup = *cgroup;
  auto uids = ParseSandboxUids(c.sandbox_uids);
  if (!uids.ok()) return Error("sandbox_uids: " + uids.error().message());
  o.sandbox_uids = *uids;
  o.sandbox_memory_headroom_bytes = c.sandbox_memory_headroom_bytes;
  o.sandbox_pids_max = c.sandbox_pids_max;
  if (c.kvm_nx_huge_pages != "keep" && c.kvm_nx_huge_pages != "never")
    return Error("kvm_nx_huge_pages: '" + c.kvm_nx_huge_pages + "' is not keep or never");
  o.kvm_nx_huge_pages_never = c.kvm_nx_huge_pages == "never";
  for (const auto& [name, t] : c.templates) {
    const std::string key = "templates." + name + ".";
    if (!ValidTemplateName(name))
      return Error("templates." + name + ": the daemon refuses names starting with '.'");
    ASSIGN_OR_RETURN(o.pools[name], PoolFrom(key, t.pool_size, t.refill_per_second, t.mergeable));
    if (!t.path.empty()) {
      o.external_templates[name] = t.path;
    } else {
      if (t.mem_mib > UINT32_MAX)
        return Error(key + "mem_mib: " + std::to_string(t.mem_mib) + " is too large");
      o.startup_templates[name] = StartupTemplate{t.guest, static_cast<uint32_t>(t.mem_mib)};
    }
  }
  return o;
}

Result<std::vector<std::string>> ExpandDaemonFlagAliases(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--no-mergeable" || a == "--no_mergeable") {
      out.insert(out.end(), {"--mergeable", "false"});
      continue;
    }
    if (a.size() < 3 || a.compare(0, 2, "--") != 0) {
      out.push_back(a);  // the config's parser says what is wrong with it
      continue;
    }
    const size_t eq = a.find('=');
    const std::string key = Underscored(a.substr(2, eq == std::string::npos ? a.npos : eq - 2));
    const bool inline_value = eq != std::string::npos;
    if (!inline_value && i + 1 >= args.size()) {
      out.push_back(a);  // "needs a value"
      continue;
    }
    const std::string value = inline_value ? a.substr(eq + 1) : args[i + 1];
    if (!inline_value) ++i;
    if (key == "mem_floor_mib") {
      uint64_t mib = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), mib);
      if (value.empty() || ec != std::errc() || end != value.data() + value.size() ||
          mib > (UINT64_MAX >> 20))
        return Error("--mem-floor-mib: expected a non-negative integer of MiB, got \"" + value +
                     "\"");
      out.insert(out.end(), {"--mem-floor", std::to_string(mib << 20)});
      continue;
    }
    if (inline_value) {
      out.push_back(a);
    } else {
      out.push_back(a);
      out.push_back(value);
    }
  }
  return out;
}

const char* StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// ---- OpsBridge ------------------------------------------------------------------

Result<std::unique_ptr<OpsBridge>> OpsBridge::Create(const ops::DaemonConfig& config) {
  ASSIGN_OR_RETURN(auto logger, ops::JsonLogger::Open(config.log_file, config.log_level));
  return std::unique_ptr<OpsBridge>(new OpsBridge(config, std::move(logger)));
}

OpsBridge::OpsBridge(const ops::DaemonConfig& config, std::unique_ptr<ops::JsonLogger> logger)
    : metrics_listen_(config.metrics_listen),
      logger_(std::move(logger)),
      metrics_(ops::RegisterFactoryMetrics(registry_)) {
  // Both outcomes shown from the start, so rate() has a series to work on.
  metrics_.getvm_seconds.With({"hit"});
  metrics_.getvm_seconds.With({"miss"});
  metrics_.getvm_total.With({"OK"});
}

OpsBridge::~OpsBridge() {
  if (http_) http_->Stop();
}

DaemonHooks OpsBridge::Hooks() {
  DaemonHooks h;
  h.log = [this](LogSeverity severity, const std::string& msg, const std::string& sandbox,
                 const std::string& tmpl) {
    const ops::LogLevel level = LevelOf(severity);
    if (!logger_->Enabled(level)) return;
    ops::LogFields f;
    if (!sandbox.empty()) f.Sandbox(sandbox);
    if (!tmpl.empty()) f.Str("template", tmpl);
    logger_->Log(level, msg, f);
  };
  h.get_vm = [this](const std::string&, double seconds, bool pool_hit) {
    metrics_.getvm_seconds.With({pool_hit ? "hit" : "miss"}).Observe(seconds);
  };
  h.clone = [this](const std::string&, double seconds) { metrics_.clone_seconds.Observe(seconds); };
  h.get_vm_result = [this](const std::string& tmpl, grpc::StatusCode code,
                           const std::string& message) {
    const char* name = StatusCodeName(code);
    metrics_.getvm_total.With({name}).Inc();
    if (code == grpc::StatusCode::OK) return;  // the core logs each hand-out
    // The caller's mistakes are info; the daemon's refusals and failures warn.
    const bool client_side = code == grpc::StatusCode::INVALID_ARGUMENT ||
                             code == grpc::StatusCode::NOT_FOUND ||
                             code == grpc::StatusCode::DEADLINE_EXCEEDED ||
                             code == grpc::StatusCode::CANCELLED;
    const ops::LogLevel level = client_side ? ops::LogLevel::kInfo : ops::LogLevel::kWarn;
    if (!logger_->Enabled(level)) return;
    ops::LogFields f;
    if (!tmpl.empty()) f.Str("template", tmpl);
    f.Str("code", name);
    logger_->Log(level, "GetVM failed: " + message, f);
  };
  return h;
}

Status OpsBridge::StartMetrics() {
  if (metrics_listen_.empty() || http_) return Status::Ok();
  ASSIGN_OR_RETURN(auto hp, ops::ParseHostPort(metrics_listen_));
  auto server = ops::MetricsHttpServer::Start(metrics_listen_, [this] { return RenderMetrics(); });
  if (!server.ok()) return server.error().Context("metrics_listen " + metrics_listen_);
  http_ = std::move(*server);
  ops::LogFields f;
  f.Str("listen", metrics_listen_).Uint("port", http_->port());
  if (IsLoopbackHost(hp.host)) {
    logger_->Info("serving /metrics", f);
  } else {
    logger_->Warn("serving /metrics beyond loopback, without authentication", f);
  }
  return Status::Ok();
}

void OpsBridge::Attach(FactoryCore* core) {
  std::lock_guard lock(mu_);
  core_ = core;
  refreshed_ = false;  // the next scrape reads the new core
}

std::string OpsBridge::RenderMetrics() {
  {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (!refreshed_ || now - refreshed_at_ >= gauge_ttl_) {
      refreshed_ = true;
      refreshed_at_ = now;
      RefreshGaugesLocked();
    }
  }
  return registry_.Render();
}

void OpsBridge::RefreshGaugesLocked() {
  if (core_ == nullptr) return;
  pb::StatusResponse status;
  if (!core_->GetStatus(&status).ok()) return;
  metrics_.live_vms.Set(status.live_vms());
  metrics_.ksm_pages_sharing.Set(static_cast<double>(status.ksm().pages_sharing()));
  metrics_.ksm_pages_shared.Set(static_cast<double>(status.ksm().pages_shared()));

  std::set<std::string> pools;
  for (const auto& p : status.pools()) {
    metrics_.pool_size.With({p.template_()}).Set(p.ready());
    pools.insert(p.template_());
  }
  for (const auto& t : pool_series_)
    if (!pools.count(t)) metrics_.pool_size.Remove({t});  // template deleted
  pool_series_ = std::move(pools);

  // Average Pss per template, over at most kMaxPssSamplesPerTemplate VMs.
  pb::ListVMsRequest req;
  req.set_include_pool(true);
  pb::ListVMsResponse vms;
  if (!core_->ListVms(req, &vms).ok()) return;
  std::map<std::string, std::vector<int>> pids;
  for (const auto& vm : vms.vms()) {
    auto& list = pids[vm.template_()];
    if (list.size() < kMaxPssSamplesPerTemplate && vm.pid() > 0) list.push_back(vm.pid());
  }
  std::set<std::string> shown;
  for (const auto& [tmpl, list] : pids) {
    double sum = 0;
    int n = 0;
    for (int pid : list) {
      auto mem = ReadProcessMemory(pid);  // gone since the listing: skipped
      if (!mem.ok()) continue;
      sum += static_cast<double>(mem->pss);
      ++n;
    }
    if (n == 0) continue;
    metrics_.vm_memory_bytes.With({tmpl}).Set(sum / n);
    shown.insert(tmpl);
  }
  // No live VM of a template: no average, no series.
  for (const auto& t : memory_series_)
    if (!shown.count(t)) metrics_.vm_memory_bytes.Remove({t});
  memory_series_ = std::move(shown);
}

Status OpsBridge::ReopenLog() {
  RETURN_IF_ERROR(logger_->Reopen());
  logger_->Info("log reopened");
  return Status::Ok();
}

}  // namespace kf::daemon

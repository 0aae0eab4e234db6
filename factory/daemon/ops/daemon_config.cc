#include "factory/daemon/ops/daemon_config.h"

#include <cctype>

#include "factory/daemon/ops/host_port.h"

namespace kf::ops {

Status ValidateTemplateName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64 && name != "." && name != "..";
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-')
      ok = false;
  if (!ok) return Error("bad template name \"" + name + "\" (want 1-64 of A-Z a-z 0-9 _ . -)");
  return Status::Ok();
}

Status ValidateDaemonConfig(const DaemonConfig& c) {
  auto in = [&](const std::string& where) { return where.empty() ? std::string() : where + ": "; };
  std::string file = in(c.source);
  if (c.socket.empty()) return Error(file + "socket: must not be empty");
  if (c.run_dir.empty()) return Error(file + "run_dir: must not be empty");
  if (c.state_dir.empty()) return Error(file + "state_dir: must not be empty");
  if (!c.tcp_listen.empty()) {
    auto hp = ParseHostPort(c.tcp_listen);
    if (!hp.ok()) return hp.error().Context(file + "tcp_listen");
  }
  if (!c.metrics_listen.empty()) {
    auto hp = ParseHostPort(c.metrics_listen);
    if (!hp.ok()) return hp.error().Context(file + "metrics_listen");
  }
  uint64_t pools = 0;
  for (const auto& [name, t] : c.templates) {
    std::string key = in(t.where) + "templates." + name;
    RETURN_IF_ERROR(ValidateTemplateName(name));
    if (t.path.empty() == t.guest.empty())
      return Error(key + ": give either path (an existing template) or guest (bare or linux)");
    if (!t.guest.empty() && t.guest != "bare" && t.guest != "linux")
      return Error(key + ".guest: \"" + t.guest + "\" is not bare or linux");
    if (!t.path.empty() && t.mem_mib != 0)
      return Error(key + ".mem_mib: only with guest (a template at path has its size)");
    if (t.refill_per_second < 0) return Error(key + ".refill_per_second: must be >= 0");
    pools += t.pool_size;
  }
  if (c.max_live_vms != 0 && pools > c.max_live_vms)
    return Error(file + "the pools (templates.*.pool_size, " + std::to_string(pools) +
                 " in all) exceed max_live_vms (" + std::to_string(c.max_live_vms) + ")");
  return Status::Ok();
}

}  // namespace kf::ops

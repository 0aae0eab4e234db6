#include "factory/daemon/ops/factory_metrics.h"

#include <fstream>

namespace kf::ops {

FactoryMetrics RegisterFactoryMetrics(MetricsRegistry& r) {
  namespace n = metric_names;
  return FactoryMetrics{
      r.AddHistogram(n::kCloneSeconds, "Time to clone one VM from its template, in seconds.",
                     LatencyBucketsSeconds())
          .Get(),
      r.AddHistogram(n::kGetVmSeconds,
                     "GetVM latency in seconds; pool=hit when served from the warm pool, "
                     "miss when cloned on demand.",
                     LatencyBucketsSeconds(), {"pool"}),
      r.AddCounter(n::kGetVmTotal, "GetVM calls by gRPC status code.", {"code"}),
      r.AddGauge(n::kPoolSize, "Warm VMs ready in the template's pool.", {"template"}),
      r.AddGauge(n::kLiveVms, "Sandbox VMM processes alive, pooled or handed out.").Get(),
      r.AddGauge(n::kVmMemoryBytes, "Average proportional set size (Pss) of one live VM, in bytes.",
                 {"template"}),
      r.AddGauge(n::kKsmPagesSharing, "KSM: how many more sites share a page (pages_sharing).")
          .Get(),
      r.AddGauge(n::kKsmPagesShared, "KSM: shared pages in use (pages_shared).").Get(),
  };
}

void UpdateKsmGauges(FactoryMetrics& m, const std::string& ksm_dir) {
  auto read = [&](const char* file) -> double {
    std::ifstream in(ksm_dir + "/" + file);
    double v = 0;
    if (in >> v) return v;
    return 0;
  };
  m.ksm_pages_sharing.Set(read("pages_sharing"));
  m.ksm_pages_shared.Set(read("pages_shared"));
}

}  // namespace kf::ops

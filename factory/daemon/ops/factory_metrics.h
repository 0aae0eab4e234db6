// The metrics kata-factory's daemon exports on GET /metrics. One place for
// their names, types, labels and meaning, so the daemon, dashboards and
// docs/OPERATIONS.md agree:
//
//   katafactory_clone_seconds            histogram  time to clone one VM from
//                                                    its template (zygote fork
//                                                    to VMM ready), pool refills
//                                                    and misses alike
//   katafactory_getvm_seconds{pool}      histogram  GetVM latency as the client
//                                                    sees it; pool="hit" (served
//                                                    from the warm pool) or "miss"
//                                                    (cloned on demand)
//   katafactory_getvm_total{code}        counter    GetVM calls by gRPC status
//                                                    code name: "OK",
//                                                    "NOT_FOUND", "RESOURCE_EXHAUSTED",
//                                                    "DEADLINE_EXCEEDED", ...
//   katafactory_pool_size{template}      gauge      warm VMs ready in a pool now
//   katafactory_live_vms                 gauge      sandbox VMMs alive (pooled and
//                                                    handed out)
//   katafactory_vm_memory_bytes{template} gauge     average Pss (proportional set
//                                                    size) of one live VM of that
//                                                    template: its share of the
//                                                    pages it shares
//   katafactory_ksm_pages_sharing        gauge      /sys/kernel/mm/ksm/pages_sharing
//   katafactory_ksm_pages_shared         gauge      /sys/kernel/mm/ksm/pages_shared
//
// Latencies are in seconds (LatencyBucketsSeconds: 100 us to 10 s).
// Remove a template's series (pool_size, vm_memory_bytes) when it is deleted.
#pragma once

#include "factory/daemon/ops/metrics.h"

namespace kf::ops {

namespace metric_names {
inline constexpr char kCloneSeconds[] = "katafactory_clone_seconds";
inline constexpr char kGetVmSeconds[] = "katafactory_getvm_seconds";
inline constexpr char kGetVmTotal[] = "katafactory_getvm_total";
inline constexpr char kPoolSize[] = "katafactory_pool_size";
inline constexpr char kLiveVms[] = "katafactory_live_vms";
inline constexpr char kVmMemoryBytes[] = "katafactory_vm_memory_bytes";
inline constexpr char kKsmPagesSharing[] = "katafactory_ksm_pages_sharing";
inline constexpr char kKsmPagesShared[] = "katafactory_ksm_pages_shared";
}  // namespace metric_names

// Handles on the daemon's metrics, registered once in `registry` (which must
// outlive them).
struct FactoryMetrics {
  Histogram& clone_seconds;
  HistogramFamily& getvm_seconds;  // With({"hit"}) / With({"miss"})
  CounterFamily& getvm_total;      // With({"OK"}), With({"RESOURCE_EXHAUSTED"}), ...
  GaugeFamily& pool_size;          // With({template_name})
  Gauge& live_vms;
  GaugeFamily& vm_memory_bytes;  // With({template_name})
  Gauge& ksm_pages_sharing;
  Gauge& ksm_pages_shared;
};

FactoryMetrics RegisterFactoryMetrics(MetricsRegistry& registry);

// Reads /sys/kernel/mm/ksm/pages_{sharing,shared} (or `ksm_dir`) into the
// two KSM gauges; a missing file (no KSM) leaves them at 0. Call it before
// rendering, e.g. from the /metrics handler.
void UpdateKsmGauges(FactoryMetrics& metrics, const std::string& ksm_dir = "/sys/kernel/mm/ksm");

}  // namespace kf::ops

// Host KVM tier: `kata-factory bench --self --mode all --count 20 --compare --json`
// on the bare guest, end to end (an in-process daemon, its template, real
// clones), and the JSON it prints. Skips (with the reason) where KVM is not
// usable; the nested tier can run this same binary ($KF_BINARY).
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "vmm-glue/kvm.h"
#include "tests/cli_run.h"

namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

using kf::testing::KfBinary;

const Value& At(const Struct& s, const std::string& key) {
  static const Value kMissing;
  auto it = s.fields().find(key);
  EXPECT_NE(it, s.fields().end()) << "missing key " << key;
  return it == s.fields().end() ? kMissing : it->second;
}

void ExpectLatency(const Struct& s, const std::string& key, double count) {
  const Struct& l = At(s, key).struct_value();
  EXPECT_EQ(At(l, "count").number_value(), count) << key;
  EXPECT_GT(At(l, "p50").number_value(), 0) << key;
  EXPECT_LE(At(l, "p50").number_value(), At(l, "p90").number_value()) << key;
  EXPECT_LE(At(l, "p90").number_value(), At(l, "p99").number_value()) << key;
  EXPECT_LE(At(l, "p99").number_value(), At(l, "max").number_value()) << key;
}

TEST(KvmBench, SelfAllModesOnTheBareGuest) {
  const std::string reason = kf::Kvm::UnavailableReason();
  if (!reason.empty()) GTEST_SKIP() << "KVM not usable: " << reason;
  char err_path[] = "/tmp/kf-kvm-bench-stderr-XXXXXX";
  const int fd = ::mkstemp(err_path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const std::string cmd =
      KfBinary() + " bench --self --mode all --count 20 --compare --json --quiet 2>" + err_path +
      " </dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = ::pclose(p);
  std::stringstream err;
  err << std::ifstream(err_path).rdbuf();
  std::remove(err_path);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st << "\nstderr:\n"
                                                     << err.str() << "\nstdout:\n"
                                                     << out;
  Struct root;
  auto parsed = google::protobuf::util::JsonStringToMessage(out, &root);
  ASSERT_TRUE(parsed.ok()) << parsed.ToString() << "\n" << out;
  EXPECT_EQ(root.fields().count("error"), 0u) << out;
  EXPECT_EQ(At(root, "mode").string_value(), "all");
  const Struct& machine = At(root, "machine").struct_value();
  EXPECT_NE(At(machine, "kvm").string_value(), "none");
  EXPECT_GT(At(machine, "cores").number_value(), 0);
  const Struct& target = At(root, "target").struct_value();
  EXPECT_EQ(At(target, "daemon").string_value(), "self");
  EXPECT_EQ(At(target, "guest").string_value(), "bare");
  EXPECT_EQ(At(target, "template_mem_bytes").number_value(), 128 << 20);
  EXPECT_GT(At(target, "template_boot_ms").number_value(), 0);
  // --compare on the bare guest: our cold boot against our clone; the QEMU
  // peer skipped, saying why.
  const Struct& compare = At(root, "compare").struct_value();
  EXPECT_GT(At(compare, "cold_boot_ms").number_value(), 0);
  EXPECT_GT(At(compare, "ours_clone_ms").number_value(), 0);
  EXPECT_GT(At(compare, "cold_boot_over_clone").number_value(), 1.0)
      << "a cold boot (64 MiB written by the guest) should take longer than a clone";
  EXPECT_NE(At(At(compare, "qemu_templating").struct_value(), "skipped")
                .string_value()
                .find("bare"),
            std::string::npos);

  // Latency: 20 pool hits (all of them hits: the pool was full each time)
  // and 20 misses.
  const Struct& lat = At(root, "latency").struct_value();
  const Struct& hit = At(lat, "pool_hit").struct_value();
  const Struct& miss = At(lat, "pool_miss").struct_value();
  EXPECT_EQ(At(hit, "pool_hits").number_value(), 20);
  EXPECT_EQ(At(miss, "pool_hits").number_value(), 0);
  for (const Struct* run : {&hit, &miss}) {
    EXPECT_EQ(At(*run, "failures").number_value(), 0);
    for (const char* k : {"get_vm_to_first_ping_ms", "get_vm_ms", "first_ping_ms",
                          "daemon_get_vm_ms", "release_ms"})
      ExpectLatency(*run, k, 20);
  }

  const Struct& tp = At(root, "throughput").struct_value();
  EXPECT_EQ(At(tp, "done").number_value(), 20);
  EXPECT_EQ(At(tp, "failures").number_value(), 0);
  EXPECT_EQ(At(tp, "clients").number_value(), 2);
  EXPECT_GT(At(tp, "vms_per_second").number_value(), 0);
  ExpectLatency(tp, "get_vm_to_first_ping_ms", 20);

  // Density: 20 live VMs, a point per VM (20 / 20), memory three ways.
  const Struct& den = At(root, "density").struct_value();
  EXPECT_EQ(At(den, "live").number_value(), 20);
  EXPECT_EQ(At(den, "stop_reason").string_value(), "count");
  const auto& points = At(den, "points").list_value();
  ASSERT_EQ(points.values_size(), 20);
  const Struct& last = points.values(19).struct_value();
  EXPECT_EQ(At(last, "live").number_value(), 20);
  EXPECT_GT(At(last, "pss_per_vm").number_value(), 0);
  EXPECT_GT(At(last, "rss_per_vm").number_value(), At(last, "pss_per_vm").number_value());
  EXPECT_GT(At(last, "kvm_estimate_per_vm").number_value(), 0);
  At(last, "mem_available_delta_per_vm");
  ExpectLatency(den, "get_vm_to_first_ping_ms", 20);
  for (const char* k : {"pid_max", "max_map_count", "nofile_soft"})
    EXPECT_GT(At(At(den, "limits").struct_value(), k).number_value(), 0) << k;

  // Working set: 20 VMs per step, 0/256/1024/4096 pages; private dirty
  // grows with the pages dirtied (4096 pages: 16 MiB per VM).
  const Struct& ws = At(root, "working_set").struct_value();
  EXPECT_EQ(At(ws, "vms_per_step").number_value(), 20);
  const auto& steps = At(ws, "steps").list_value();
  ASSERT_EQ(steps.values_size(), 4);
  double prev = -1;
  for (int i = 0; i < 4; ++i) {
    const Struct& s = steps.values(i).struct_value();
    EXPECT_EQ(s.fields().count("skipped"), 0u) << "step " << i;
    EXPECT_EQ(At(s, "vms").number_value(), 20);
    const double dirty = At(s, "private_dirty_per_vm").number_value();
    EXPECT_GT(dirty, prev) << "step " << i;
    prev = dirty;
  }
  EXPECT_GT(prev, 16.0 * 1048576 * 0.9);
}

}  // namespace

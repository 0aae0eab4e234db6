// Snapshot write and load throughput (issue #6, micro-benchmarks), no KVM
// needed. 128 MiB of guest-like memory (the first 64 MiB patterned, the
// rest zeros, as a bare template after boot) written to and read from a
// file in $KF_BENCH_DIR (default /var/tmp: a disk, not tmpfs, on most hosts):
//   WriteTemplate: the product's path (sparse memory.img skipping zero pages,
//     XXH3 checksum, state.bin, fsync, rename);
//   plain pwrite of the whole image in 1 MiB chunks, then fsync;
//   io_uring writes of the same chunks, 8 in flight, then fsync;
//   CopyAndVerifyMemory: the zygote's load (SEEK_DATA/SEEK_HOLE, copy into a
//     memfd, XXH3 check).
// Bytes/s are of the 128 MiB image. Page cache effects are not defeated:
// these are what the factory sees on a warm host, not raw disk speed.
// Run: build/bench/micro/snapshot_io_bench
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <liburing.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "memshare/guest_backing.h"
#include "snapshot/template_files.h"

namespace {

constexpr uint64_t kMemBytes = 128ull << 20;
constexpr uint64_t kChunk = 1ull << 20;

std::string BenchDir() {
  const char* d = std::getenv("KF_BENCH_DIR");
  return d != nullptr && *d != '\0' ? d : "/var/tmp";
}

const std::vector<uint8_t>& Memory() {
  static std::vector<uint8_t> m = [] {
    std::vector<uint8_t> v(kMemBytes, 0);
    for (uint64_t i = 0; i < kMemBytes / 2; i += 8) v[i] = static_cast<uint8_t>(i * 31 + 7);
    return v;
  }();
  return m;
}

kf::TemplateState BareState() {
  kf::TemplateState s;
  s.guest_kind = kf::kGuestKindBare;
  s.vm_config.irqchip = false;
  s.vcpus.resize(1);
  s.vsock.emplace();
  return s;
}

void BM_WriteTemplate(benchmark::State& state) {
  const std::string dir = BenchDir() + "/kf-bench-template-" + std::to_string(::getpid());
  for (auto _ : state) {
    kf::Status s = kf::WriteTemplate(dir, BareState(), Memory());
    if (!s.ok()) return state.SkipWithError(s.error().message().c_str());
    state.PauseTiming();
    std::filesystem::remove_all(dir);
    state.ResumeTiming();
  }
  state.SetBytesProcessed(state.iterations() * kMemBytes);
}
BENCHMARK(BM_WriteTemplate)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_LoadTemplate(benchmark::State& state) {
  const std::string dir = BenchDir() + "/kf-bench-load-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  kf::Status s = kf::WriteTemplate(dir, BareState(), Memory());
  if (!s.ok()) return state.SkipWithError(s.error().message().c_str());
  auto st = kf::ReadTemplateState(dir);
  if (!st.ok()) return state.SkipWithError(st.error().message().c_str());
  for (auto _ : state) {
    auto fd = kf::CreateMemfd("load-bench", kMemBytes);
    if (!fd.ok()) return state.SkipWithError(fd.error().message().c_str());
    kf::Status c = kf::CopyAndVerifyMemory(dir, *st, fd->get());
    if (!c.ok()) return state.SkipWithError(c.error().message().c_str());
  }
  state.SetBytesProcessed(state.iterations() * kMemBytes);
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_LoadTemplate)->Unit(benchmark::kMillisecond)->UseRealTime();

int OpenScratch(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

void BM_PlainPwrite(benchmark::State& state) {
  const std::string path = BenchDir() + "/kf-bench-plain-" + std::to_string(::getpid());
  for (auto _ : state) {
    int fd = OpenScratch(path);
    if (fd < 0) return state.SkipWithError("open failed");
    for (uint64_t off = 0; off < kMemBytes; off += kChunk)
      if (::pwrite(fd, Memory().data() + off, kChunk, off) != static_cast<ssize_t>(kChunk))
        return state.SkipWithError("pwrite failed");
    ::fsync(fd);
    ::close(fd);
  }
  ::unlink(path.c_str());
  state.SetBytesProcessed(state.iterations() * kMemBytes);
}
BENCHMARK(BM_PlainPwrite)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_IoUringWrite(benchmark::State& state) {
  const std::string path = BenchDir() + "/kf-bench-uring-" + std::to_string(::getpid());
  constexpr unsigned kDepth = 8;
  io_uring ring;
  if (io_uring_queue_init(kDepth, &ring, 0) != 0)
    return state.SkipWithError("io_uring_queue_init failed (io_uring disabled here?)");
  for (auto _ : state) {
    int fd = OpenScratch(path);
    if (fd < 0) return state.SkipWithError("open failed");
    uint64_t submitted = 0, done = 0, inflight = 0;
    while (done < kMemBytes) {
      while (inflight < kDepth && submitted < kMemBytes) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        io_uring_prep_write(sqe, fd, Memory().data() + submitted, kChunk, submitted);
        submitted += kChunk;
        ++inflight;
      }
      io_uring_submit(&ring);
      io_uring_cqe* cqe;
      if (io_uring_wait_cqe(&ring, &cqe) != 0 || cqe->res != static_cast<int>(kChunk)) {
        io_uring_queue_exit(&ring);
        return state.SkipWithError("io_uring write failed or was short");
      }
      io_uring_cqe_seen(&ring, cqe);
      --inflight;
      done += kChunk;
    }
    ::fsync(fd);
    ::close(fd);
  }
  io_uring_queue_exit(&ring);
  ::unlink(path.c_str());
  state.SetBytesProcessed(state.iterations() * kMemBytes);
}
BENCHMARK(BM_IoUringWrite)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

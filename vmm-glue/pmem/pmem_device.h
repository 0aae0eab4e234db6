// The virtio-pmem device (virtio 1.2 5.19, device id 27), for DAX guests
// (issue #4): a host image file is mapped into guest physical memory at a
// fixed address by the VMM (its own KVM memory slot, not this device's
// business), and this device tells the guest where it is and answers its
// flush requests.
//
//   auto backing = MapPmemImage(dir + "/rootfs.ext4", /*read_only=*/true);   // memshare/
//   // memory slot: [gpa, gpa + backing->size) -> backing->mapping.data(),
//   //              KVM_MEM_READONLY when read_only
//   auto pmem = VirtioPmem::Create(mem, 0xd0001000,
//                                  {.gpa = gpa, .size = backing->size,
//                                   .backing_fd = backing->fd.get(), .read_only = true});
//   bus.AddMmio(0xd0001000, pmem::kMmioWindowSize, (*pmem)->mmio(), "virtio-pmem");
//
// Configuration space: `le64 start; le64 size;` (the region). One request
// queue; a request is a driver-readable `le32 type` followed by a
// driver-writable `le32 ret`. VIRTIO_PMEM_REQ_TYPE_FLUSH (0) is answered
// with VIRTIO_PMEM_RESP_TYPE_OK (0) once the backing file is on stable
// storage (fsync of `backing_fd`; nothing to do for a read-only backing or
// when there is no file), VIRTIO_PMEM_RESP_TYPE_EIO (1) when fsync fails or
// the type is unknown; used len 4 either way.
//
// Features: VIRTIO_F_VERSION_1 only. VIRTIO_PMEM_F_SHMEM_REGION (bit 0) is
// not offered: with it the driver would take the region from shared memory
// region 0 instead of `start`/`size`, and our virtio-mmio transport has no
// shared memory regions (SHMLen reads all-ones, "absent").
//
// Hostile rings, as the vsock device (vsock_device.h): a broken ring sets
// DEVICE_NEEDS_RESET and the device stops touching guest memory until the
// driver resets it; a bad chain (any Virtqueue::Pop refusal, a readable part
// other than exactly 4 bytes, a writable part under 4 bytes, more than
// kMaxRequestSegments descriptors) is returned with used len 0, nothing
// written, and counted.
//
// Single-threaded: every call comes from the VMM's one thread while the
// guest is not running. The fsync runs on that thread (QEMU uses a worker
// thread; the guest's flushes are rare: fsync, sync, unmount).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "proto/vsock_state.pb.h"
#include "vmm-glue/guest_memory.h"
#include "vmm-glue/io_bus.h"
#include "vmm-glue/result.h"
#include "vmm-glue/virtio/virtio_device.h"

namespace kf::virtio {
class MmioTransport;
}

namespace kf::pmem {

inline constexpr uint64_t kMmioWindowSize = 0x1000;
inline constexpr uint16_t kQueueMaxSize = 128;
inline constexpr uint32_t kRequestQueue = 0;
// The region's start and size must be multiples of this (see
// memshare/pmem_backing.h for why DAX needs it).
inline constexpr uint64_t kRegionAlignment = 2ull << 20;

// Request types and answers (virtio 1.2 5.19.6; <linux/virtio_pmem.h> has
// the type only).
inline constexpr uint32_t kReqTypeFlush = 0;
inline constexpr uint32_t kRespOk = 0;
inline constexpr uint32_t kRespEio = 1;
inline constexpr uint32_t kRequestBytes = 4;   // le32 type
inline constexpr uint32_t kResponseBytes = 4;  // le32 ret
// A request is 8 bytes in two buffers (Linux uses exactly two descriptors).
// A driver may split them further (the device does not assume a framing),
// but a chain of more descriptors than bytes is refused.
inline constexpr size_t kMaxRequestSegments = kRequestBytes + kResponseBytes;

struct PmemOptions {
  uint64_t gpa = 0;   // where the VMM maps the region: kRegionAlignment aligned
  uint64_t size = 0;  // non-zero multiple of kRegionAlignment
  // The mapped image file, for fsync on FLUSH; not owned, must outlive the
  // device. -1: no file (nothing to flush, FLUSH answers OK).
  int backing_fd = -1;
  // The region is mapped read-only: FLUSH has nothing to write back.
  bool read_only = false;
};

class PmemDevice final : public virtio::VirtioDevice {
 public:
  explicit PmemDevice(const PmemOptions& options) : options_(options) {}

  const PmemOptions& options() const { return options_; }

  // VirtioDevice.
  uint32_t device_id() const override;
  uint64_t device_features() const override;
  size_t num_queues() const override { return 1; }
  uint16_t queue_max_size() const override { return kQueueMaxSize; }
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) const override;
  // Also answers requests already queued (a restored driver's).
  void Activate(virtio::VirtioTransport* transport) override;
  void QueueNotify(uint32_t index) override;
  void Reset() override;

  struct Counters {
    uint64_t bad_chains = 0;        // returned with used len 0
    uint64_t flushes = 0;           // FLUSH answered OK
    uint64_t flush_errors = 0;      // FLUSH answered EIO (fsync failed)
    uint64_t unknown_requests = 0;  // other types, answered EIO
  };
  const Counters& counters() const { return counters_; }

 private:
  bool active() const;
  void ProcessRequests();
  // The answer to a well-formed request of `type`.
  uint32_t Handle(uint32_t type);
  void BadChain(virtio::Virtqueue& q, uint16_t head, const std::string& why);

  PmemOptions options_;
  virtio::VirtioTransport* transport_ = nullptr;  // while active
  bool flush_error_logged_ = false;
  virtio::DescChain chain_;  // scratch, kept for its capacity
  Counters counters_;
};

// The device behind its virtio-mmio window, as the sandbox VMM holds it.
class VirtioPmem {
 public:
  // Refuses a region that is empty, not kRegionAlignment aligned (start or
  // size), wraps, overlaps guest RAM [0, mem.size()) or the MMIO window.
  static Result<std::unique_ptr<VirtioPmem>> Create(GuestMemoryView mem, uint64_t mmio_base,
                                                    PmemOptions options);
  ~VirtioPmem();

  // Register with IoBus::AddMmio(mmio_base, kMmioWindowSize, mmio(), ...).
  IoDevice* mmio();
  // True if, since the last call, the device put anything in the used ring
  // (or needs a reset); clears the flag.
  bool TakeGuestWork();
  // DEVICE_NEEDS_RESET after hostile input.
  bool needs_reset() const;
  const PmemOptions& options() const;
  const PmemDevice::Counters& counters() const;

  // Transport registers, queue configuration and indices, and the region.
  katafactory::snapshot::v1::PmemDeviceState Save() const;
  // Refuses (changing nothing) a state without a transport, a state whose
  // gpa, size or read_only differ from this device's options (the guest has
  // mapped that region already), or a transport state that does not
  // validate (MmioTransport::ValidateState). Otherwise the transport is
  // restored and, if the driver was OK, the device re-activated on the
  // saved queue. Guest memory must already hold the template's contents.
  Status Restore(const katafactory::snapshot::v1::PmemDeviceState& state);

  // For tests and diagnostics.
  virtio::MmioTransport& transport() { return *transport_; }

 private:
  VirtioPmem() = default;

  std::unique_ptr<PmemDevice> device_;
  std::unique_ptr<virtio::MmioTransport> transport_;
};

}  // namespace kf::pmem

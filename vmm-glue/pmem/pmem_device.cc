#include "vmm-glue/pmem/pmem_device.h"

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "vmm-glue/virtio/mmio_transport.h"

namespace kf::pmem {

namespace pb = katafactory::snapshot::v1;

using virtio::ChainDirection;
using virtio::PopStatus;
using virtio::Virtqueue;

namespace {

static_assert(std::endian::native == std::endian::little,
              "virtio-pmem config and requests are little endian; this code uses them natively");

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// [a, a+alen) and [b, b+blen) intersect (both known not to wrap).
bool Overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
  return a < b + blen && b < a + alen;
}

}  // namespace

// --- PmemDevice ---

uint32_t PmemDevice::device_id() const { return VIRTIO_ID_PMEM; }

// VERSION_1 only: not VIRTIO_PMEM_F_SHMEM_REGION (see the header), no
// indirect descriptors, no event idx.
uint64_t PmemDevice::device_features() const { return uint64_t{1} << VIRTIO_F_VERSION_1; }

void PmemDevice::ReadConfig(uint64_t offset, std::span<uint8_t> data) const {
  struct {
    uint64_t start, size;  // le64 each, as the host
  } config{options_.gpa, options_.size};
  static_assert(sizeof config == 16);
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t at = offset + i;
    data[i] = at < sizeof config ? reinterpret_cast<const uint8_t*>(&config)[at] : 0;
  }
}

bool PmemDevice::active() const { return transport_ != nullptr && transport_->active(); }

void PmemDevice::Activate(virtio::VirtioTransport* transport) {
  transport_ = transport;
  ProcessRequests();  // a restored driver may have queued some before the snapshot
}

void PmemDevice::Reset() { transport_ = nullptr; }

void PmemDevice::QueueNotify(uint32_t index) {
  if (index == kRequestQueue) ProcessRequests();
}

void PmemDevice::BadChain(Virtqueue& q, uint16_t head, const std::string& why) {
  ++counters_.bad_chains;
  transport_->NoteBadInput(why);
  q.PushUsed(transport_->memory(), head, 0);  // dropped, but the driver gets it back
}

void PmemDevice::ProcessRequests() {
  if (!active()) return;
  Virtqueue& q = transport_->queue(kRequestQueue);
  const GuestMemoryView mem = transport_->memory();
  std::string why;
  // At most queue-size chains: Pop refuses an avail idx further ahead.
  while (active()) {
    const PopStatus st = q.Pop(mem, ChainDirection::kAny, &chain_, &why);
    if (st == PopStatus::kEmpty) break;
    if (st == PopStatus::kBroken) {
      transport_->DeviceNeedsReset("request queue: " + why);
      break;
    }
    if (st == PopStatus::kBadChain) {
      BadChain(q, chain_.head, "request queue: " + why);
      continue;
    }
    if (chain_.segments.size() > kMaxRequestSegments) {
      BadChain(q, chain_.head, "request of " + std::to_string(chain_.segments.size()) +
                                   " descriptors, more than " +
                                   std::to_string(kMaxRequestSegments));
      continue;
    }
    if (chain_.readable_len != kRequestBytes || chain_.writable_len < kResponseBytes) {
      BadChain(q, chain_.head, "request with " + std::to_string(chain_.readable_len) +
                                   " readable and " + std::to_string(chain_.writable_len) +
                                   " writable bytes (expected 4 and at least 4)");
      continue;
    }
    uint32_t type = 0;  // le32
    chain_.CopyFrom(mem, 0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&type), sizeof type));
    const uint32_t ret = Handle(type);  // le32
    chain_.CopyTo(mem, 0,
                  std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&ret), sizeof ret));
    q.PushUsed(mem, chain_.head, kResponseBytes);
  }
  if (q.TakeUsedFlag()) transport_->SignalUsed();
}

uint32_t PmemDevice::Handle(uint32_t type) {
  if (type != kReqTypeFlush) {
    ++counters_.unknown_requests;  // a later spec's request, or a confused driver
    return kRespEio;
  }
  // A read-only region has nothing to write back; without a file there is
  // nowhere to write it. Otherwise fsync: the region is a MAP_SHARED mapping
  // of the file, so the guest's stores are dirty page-cache pages of that
  // file (KVM maps them writable through a write fault, which marks them
  // dirty, and write-back re-protects them), and fsync writes them all; on
  // Linux msync(MS_SYNC) would do the same through the file's fsync.
  if (!options_.read_only && options_.backing_fd >= 0) {
    int rc;
    do {
      rc = ::fsync(options_.backing_fd);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      ++counters_.flush_errors;
      if (!std::exchange(flush_error_logged_, true)) {
        std::fprintf(stderr, "virtio-pmem: fsync of the backing file: %s (answered EIO)\n",
                     std::strerror(errno));
      }
      return kRespEio;
    }
  }
  ++counters_.flushes;
  return kRespOk;
}

// --- VirtioPmem ---

Result<std::unique_ptr<VirtioPmem>> VirtioPmem::Create(GuestMemoryView mem, uint64_t mmio_base,
                                                       PmemOptions options) {
  const std::string region = "pmem: region [" + Hex(options.gpa) + ", +" + Hex(options.size) + ")";
  if (options.size == 0) return Error(region + " is empty");
  if (options.gpa % kRegionAlignment != 0 || options.size % kRegionAlignment != 0) {
    return Error(region + " is not 2 MiB aligned (start and size must be, for DAX)");
  }
  if (options.gpa + options.size < options.gpa) return Error(region + " wraps");
  if (mmio_base + kMmioWindowSize < mmio_base) {
    return Error("pmem: MMIO window at " + Hex(mmio_base) + " wraps");
  }
  if (Overlaps(options.gpa, options.size, 0, mem.size())) {
    return Error(region + " overlaps guest RAM [0, " + Hex(mem.size()) + ")");
  }
  if (Overlaps(options.gpa, options.size, mmio_base, kMmioWindowSize)) {
    return Error(region + " overlaps its MMIO window at " + Hex(mmio_base));
  }
  std::unique_ptr<VirtioPmem> p(new VirtioPmem());
  p->device_ = std::make_unique<PmemDevice>(options);
  p->transport_ =
      std::make_unique<virtio::MmioTransport>(mem, mmio_base, p->device_.get(), "virtio-pmem");
  return p;
}

VirtioPmem::~VirtioPmem() = default;

IoDevice* VirtioPmem::mmio() { return transport_.get(); }

bool VirtioPmem::TakeGuestWork() { return transport_->TakeGuestWork(); }

bool VirtioPmem::needs_reset() const { return transport_->needs_reset(); }

const PmemOptions& VirtioPmem::options() const { return device_->options(); }

const PmemDevice::Counters& VirtioPmem::counters() const { return device_->counters(); }

pb::PmemDeviceState VirtioPmem::Save() const {
  pb::PmemDeviceState s;
  *s.mutable_transport() = transport_->Save();
  s.set_gpa(options().gpa);
  s.set_size(options().size);
  s.set_read_only(options().read_only);
  return s;
}

Status VirtioPmem::Restore(const pb::PmemDeviceState& state) {
  // Everything is checked before anything changes.
  if (!state.has_transport()) return Error("pmem state: no transport state");
  const PmemOptions& o = options();
  if (state.gpa() != o.gpa || state.size() != o.size) {
    return Error("pmem state: region [" + Hex(state.gpa()) + ", +" + Hex(state.size()) +
                 ") differs from this device's [" + Hex(o.gpa) + ", +" + Hex(o.size) + ")");
  }
  // The guest chose how to use the region (e.g. how it mounted it) knowing
  // whether its stores reach the file; a clone must keep that.
  if (state.read_only() != o.read_only) {
    return Error(std::string("pmem state: saved with a ") +
                 (state.read_only() ? "read-only" : "writable") + " region, this device's is " +
                 (o.read_only ? "read-only" : "writable"));
  }
  RETURN_IF_ERROR(transport_->ValidateState(state.transport()));
  // Resets the device and, if the driver was OK, re-activates it on the
  // saved queue (answering what was queued).
  transport_->Restore(state.transport());
  return Status::Ok();
}

}  // namespace kf::pmem

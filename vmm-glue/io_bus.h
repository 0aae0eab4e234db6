// The I/O bus: port and MMIO ranges mapped to device handlers, dispatched
// from the vCPU exit loop (as kvmtool's kvm__register_pio/mmio).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "vmm-glue/result.h"

namespace kf {

// What the run loop does after a handler returns.
enum class IoAction {
  kContinue,  // re-enter the guest
  kStop,      // return from the run loop; the exit stays pending (see
              // Vcpu::CompletePendingExit)
};

class IoDevice {
 public:
  virtual ~IoDevice() = default;
  // `addr` is the port or guest physical address; `data` is the access size.
  virtual IoAction Read(uint64_t addr, std::span<uint8_t> data) = 0;
  virtual IoAction Write(uint64_t addr, std::span<const uint8_t> data) = 0;
};

class IoBus {
 public:
  // Registers [base, base+len); overlapping ranges are refused.
  Status AddPio(uint16_t base, uint16_t len, IoDevice* device, std::string name);
  Status AddMmio(uint64_t base, uint64_t len, IoDevice* device, std::string name);

  // Unclaimed reads return all-ones, unclaimed writes are dropped (as on a
  // PC bus); both are counted.
  IoAction Pio(uint16_t port, bool is_write, std::span<uint8_t> data);
  IoAction Mmio(uint64_t addr, bool is_write, std::span<uint8_t> data);

  uint64_t unclaimed_accesses() const { return unclaimed_; }

 private:
  struct Range {
    uint64_t len;
    IoDevice* device;
    std::string name;
  };
  using RangeMap = std::map<uint64_t, Range>;  // keyed by base
  static Status Add(RangeMap& map, uint64_t base, uint64_t len, IoDevice* device,
                    std::string name);
  IoAction Dispatch(const RangeMap& map, uint64_t addr, bool is_write,
                    std::span<uint8_t> data);

  RangeMap pio_;
  RangeMap mmio_;
  uint64_t unclaimed_ = 0;
};

}  // namespace kf

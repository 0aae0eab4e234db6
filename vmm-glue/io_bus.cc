#include "vmm-glue/io_bus.h"

#include <cstring>

namespace kf {

Status IoBus::Add(RangeMap& map, uint64_t base, uint64_t len, IoDevice* device,
                  std::string name) {
  if (len == 0 || base + len < base) return Error("I/O range of " + name + " is empty or wraps");
  auto next = map.lower_bound(base);
  if (next != map.end() && next->first < base + len)
    return Error("I/O range of " + name + " overlaps " + next->second.name);
  if (next != map.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.len > base)
      return Error("I/O range of " + name + " overlaps " + prev->second.name);
  }
  map.emplace(base, Range{len, device, std::move(name)});
  return Status::Ok();
}

Status IoBus::AddPio(uint16_t base, uint16_t len, IoDevice* device, std::string name) {
  return Add(pio_, base, len, device, std::move(name));
}

Status IoBus::AddMmio(uint64_t base, uint64_t len, IoDevice* device, std::string name) {
  return Add(mmio_, base, len, device, std::move(name));
}

IoAction IoBus::Dispatch(const RangeMap& map, uint64_t addr, bool is_write,
                         std::span<uint8_t> data) {
  auto it = map.upper_bound(addr);
  if (it != map.begin()) {
    --it;
    const Range& r = it->second;
    if (addr - it->first < r.len && data.size() <= r.len - (addr - it->first)) {
      return is_write ? r.device->Write(addr, data) : r.device->Read(addr, data);
    }
  }
  ++unclaimed_;
  if (!is_write) std::memset(data.data(), 0xff, data.size());
  return IoAction::kContinue;
}

IoAction IoBus::Pio(uint16_t port, bool is_write, std::span<uint8_t> data) {
  return Dispatch(pio_, port, is_write, data);
}

IoAction IoBus::Mmio(uint64_t addr, bool is_write, std::span<uint8_t> data) {
  return Dispatch(mmio_, addr, is_write, data);
}

}  // namespace kf

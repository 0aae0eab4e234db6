#include "snapshot/template_state.h"

#include <algorithm>
#include <cstdio>
#include <string>

namespace kf {
namespace {

std::string Hex(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

bool PageAligned(uint64_t v) { return v % kTemplatePageSize == 0; }

Status ValidateRegions(const TemplateState& state) {
  if (state.regions.empty()) return Error("memory layout has no regions");
  if (state.regions.size() > kMaxMemoryRegions) {
    return Error("memory layout has " + std::to_string(state.regions.size()) +
                 " regions, at most " + std::to_string(kMaxMemoryRegions));
  }
  uint64_t total = 0;
  for (size_t i = 0; i < state.regions.size(); ++i) {
    const MemoryRegion& r = state.regions[i];
    const std::string what = "memory region " + std::to_string(i) + ": ";
    if (r.size == 0) return Error(what + "size is 0");
    if (!PageAligned(r.gpa) || !PageAligned(r.size) || !PageAligned(r.file_offset)) {
      return Error(what + "gpa " + Hex(r.gpa) + ", size " + Hex(r.size) + ", file offset " +
                   Hex(r.file_offset) + " are not all 4 KiB aligned");
    }
    // Written as subtractions so that huge values cannot wrap around.
    if (r.file_offset > state.mem_size || r.size > state.mem_size - r.file_offset) {
      return Error(what + "file range " + Hex(r.file_offset) + "+" + Hex(r.size) +
                   " extends past the " + std::to_string(state.mem_size) +
                   " bytes of guest memory");
    }
    if (r.gpa > UINT64_MAX - r.size) return Error(what + "gpa range wraps around");
    total += r.size;  // cannot overflow: each size <= mem_size, count <= 64
  }
  if (total != state.mem_size) {
    return Error("memory regions cover " + std::to_string(total) + " bytes, memory is " +
                 std::to_string(state.mem_size));
  }
  // No two regions may share guest addresses or file bytes: either would
  // alias memory that the guest believes is distinct.
  auto overlap = [&](auto start_of) -> bool {
    std::vector<MemoryRegion> sorted = state.regions;
    std::sort(sorted.begin(), sorted.end(),
              [&](const auto& a, const auto& b) { return start_of(a) < start_of(b); });
    for (size_t i = 1; i < sorted.size(); ++i) {
      if (start_of(sorted[i - 1]) + sorted[i - 1].size > start_of(sorted[i])) return true;
    }
    return false;
  };
  if (overlap([](const MemoryRegion& r) { return r.gpa; })) {
    return Error("memory regions overlap in guest physical addresses");
  }
  if (overlap([](const MemoryRegion& r) { return r.file_offset; })) {
    return Error("memory regions overlap in memory.img");
  }
  return Status::Ok();
}

Status ValidateVcpu(const VcpuState& vcpu, size_t id) {
  const std::string what = "vcpu " + std::to_string(id) + " ";
  if (!vcpu.xsave.empty() &&
      (vcpu.xsave.size() < kMinXsaveBytes || vcpu.xsave.size() > kMaxXsaveBytes)) {
    return Error(what + "xsave: " + std::to_string(vcpu.xsave.size()) + " bytes, expected " +
                 std::to_string(kMinXsaveBytes) + " to " + std::to_string(kMaxXsaveBytes));
  }
  if (vcpu.cpuid.size() > kMaxCpuidEntries) {
    return Error(what + "cpuid: " + std::to_string(vcpu.cpuid.size()) + " entries, at most " +
                 std::to_string(kMaxCpuidEntries));
  }
  if (vcpu.msrs.size() > kMaxMsrs) {
    return Error(what + "msrs: " + std::to_string(vcpu.msrs.size()) + " entries, at most " +
                 std::to_string(kMaxMsrs));
  }
  return Status::Ok();
}

}  // namespace

Status ValidateTemplateState(const TemplateState& state) {
  if (state.format_version != kTemplateFormatVersion) {
    return Error("template format version " + std::to_string(state.format_version) +
                 " is not supported (this build reads " + std::to_string(kTemplateFormatVersion) +
                 ")");
  }
  if (state.guest_kind != kGuestKindBare && state.guest_kind != kGuestKindLinux) {
    return Error("guest kind \"" + state.guest_kind + "\" is neither \"bare\" nor \"linux\"");
  }
  if (state.mem_size == 0 || !PageAligned(state.mem_size) || state.mem_size > kMaxMemSize) {
    return Error("memory size " + std::to_string(state.mem_size) +
                 " is not a positive multiple of 4 KiB up to 16 TiB");
  }
  if (state.memory_file_size != state.mem_size + kMemoryFooterSize) {
    return Error("memory file size " + std::to_string(state.memory_file_size) +
                 " is not memory size " + std::to_string(state.mem_size) + " + " +
                 std::to_string(kMemoryFooterSize) + "-byte footer");
  }
  RETURN_IF_ERROR(ValidateRegions(state));
  if (state.vcpus.empty() || state.vcpus.size() > kMaxVcpus) {
    return Error("template has " + std::to_string(state.vcpus.size()) + " vCPUs, expected 1 to " +
                 std::to_string(kMaxVcpus));
  }
  for (size_t i = 0; i < state.vcpus.size(); ++i) {
    RETURN_IF_ERROR(ValidateVcpu(state.vcpus[i], i));
  }
  if (state.guest_kind == kGuestKindLinux) {
    // A kernel that booted with an IOAPIC and virtio devices cannot resume
    // without them.
    if (!state.vm_config.irqchip || !state.vm_config.pit)
      return Error("a linux template needs the in-kernel irqchip and PIT");
    if (!state.vsock.has_value()) return Error("a linux template has no vsock device state");
    if (state.mem_size > kLinuxMaxMemSize)
      return Error("a linux template's memory (" + std::to_string(state.mem_size) +
                   " bytes) runs into the MMIO hole at 3 GiB");
    const LinuxGuestConfig& lg = state.linux_guest;
    if ((lg.rootfs_size != 0) != lg.pmem.has_value())
      return Error("a linux template's rootfs size and pmem device state come together");
    if (lg.pmem.has_value() && lg.pmem->size() != lg.rootfs_size)
      return Error("the pmem device's region (" + std::to_string(lg.pmem->size()) +
                   " bytes) is not the rootfs image (" + std::to_string(lg.rootfs_size) +
                   " bytes)");
  }
  return Status::Ok();
}

}  // namespace kf

// DescribeTemplate (declared in template_files.h): the text of
// `kata-factory template inspect`.
#include <time.h>

#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

#include "snapshot/template_files.h"

namespace kf {
namespace {

std::string Format(const char* fmt, auto... args) {
  char buf[256];
  snprintf(buf, sizeof(buf), fmt, args...);
  return buf;
}

std::string Size(uint64_t bytes) {
  if (bytes != 0 && bytes % (1 << 20) == 0) return Format("%" PRIu64 " MiB", bytes >> 20);
  if (bytes != 0 && bytes % (1 << 10) == 0) return Format("%" PRIu64 " KiB", bytes >> 10);
  return Format("%" PRIu64 " bytes", bytes);
}

std::string Time(int64_t unix_ns) {
  const time_t secs = static_cast<time_t>(unix_ns / 1000000000);
  struct tm tm;
  char buf[64];
  if (gmtime_r(&secs, &tm) == nullptr || strftime(buf, sizeof(buf), "%F %T UTC", &tm) == 0) {
    return Format("%" PRId64 " ns", unix_ns);
  }
  return buf;
}

std::string Join(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : " ") + w;
  return out.empty() ? "-" : out;
}

const char* MpStateName(uint32_t s) {
  switch (s) {
    case KVM_MP_STATE_RUNNABLE:
      return "runnable";
    case KVM_MP_STATE_UNINITIALIZED:
      return "uninitialized";
    case KVM_MP_STATE_INIT_RECEIVED:
      return "init-received";
    case KVM_MP_STATE_HALTED:
      return "halted";
    case KVM_MP_STATE_SIPI_RECEIVED:
      return "sipi-received";
    default:
      return "other";
  }
}

// Appends name to present or absent.
struct Pieces {
  std::vector<std::string> present, absent;
  void Add(bool has, const std::string& name, const std::string& detail = "") {
    if (has) {
      present.push_back(detail.empty() ? name : name + "(" + detail + ")");
    } else {
      absent.push_back(name);
    }
  }
  std::string Lines(const std::string& indent) const {
    std::string out = indent + "present: " + Join(present) + "\n";
    if (!absent.empty()) out += indent + "absent:  " + Join(absent) + "\n";
    return out;
  }
};

void AppendUnsupported(const std::vector<std::string>& list, const std::string& indent,
                       std::string* out) {
  for (const std::string& u : list) *out += indent + "unsupported: " + u + "\n";
}

std::string DescribeVcpu(const VcpuState& v, size_t id) {
  std::string out = Format(
      "  vcpu %zu: rip 0x%llx rsp 0x%llx cr0 0x%llx cr3 0x%llx efer 0x%llx", id,
      static_cast<unsigned long long>(v.regs.rip), static_cast<unsigned long long>(v.regs.rsp),
      static_cast<unsigned long long>(v.sregs.cr0), static_cast<unsigned long long>(v.sregs.cr3),
      static_cast<unsigned long long>(v.sregs.efer));
  if (v.mp_state) out += std::string(", ") + MpStateName(v.mp_state->mp_state);
  out += "\n";
  Pieces p;
  p.Add(!v.cpuid.empty(), "cpuid", std::to_string(v.cpuid.size()));
  p.Add(true, "regs");
  p.Add(true, "sregs");
  p.Add(!v.xsave.empty(), "xsave", Size(v.xsave.size()));
  p.Add(v.fpu.has_value(), "fpu");
  p.Add(v.xcrs.has_value(), "xcrs");
  p.Add(!v.msrs.empty(), "msrs", std::to_string(v.msrs.size()));
  p.Add(v.lapic.has_value(), "lapic");
  p.Add(v.events.has_value(), "events");
  p.Add(v.debugregs.has_value(), "debugregs");
  p.Add(v.mp_state.has_value(), "mp_state");
  p.Add(v.tsc_khz.has_value(), "tsc_khz", v.tsc_khz ? std::to_string(*v.tsc_khz) : "");
  out += p.Lines("          ");
  AppendUnsupported(v.unsupported, "          ", &out);
  return out;
}

}  // namespace

std::string DescribeTemplate(const TemplateState& s) {
  std::string out = Format("template %016llx, format %u\n",
                           static_cast<unsigned long long>(s.template_id), s.format_version);
  out += "kind:     " + s.guest_kind + "\n";
  out += "created:  " + Time(s.created_unix_ns) + "\n";
  out += "host:     kernel " + (s.host.kernel_release.empty() ? "?" : s.host.kernel_release) +
         ", cpu \"" + s.host.cpu_model + "\"" + (s.host.is_pvm ? ", PVM" : "") + "\n";
  out += "memory:   " + Size(s.mem_size) +
         Format(" in %zu region(s), xxh3 %016llx\n", s.regions.size(),
                static_cast<unsigned long long>(s.memory_checksum));
  for (size_t i = 0; i < s.regions.size(); ++i) {
    const MemoryRegion& r = s.regions[i];
    out += Format("  region %zu: gpa 0x%llx, ", i, static_cast<unsigned long long>(r.gpa)) +
           Size(r.size) +
           Format(", file offset 0x%llx\n", static_cast<unsigned long long>(r.file_offset));
  }
  out += std::string("vm:       irqchip ") + (s.vm_config.irqchip ? "on" : "off") + ", pit " +
         (s.vm_config.pit ? "on" : "off") + "\n";
  if (s.guest_kind == kGuestKindBare) {
    out +=
        "bare:     init " + Size(s.bare.init_bytes) +
        Format(", seed 0x%llx, image xxh3 %016llx\n", static_cast<unsigned long long>(s.bare.seed),
               static_cast<unsigned long long>(s.bare.image_checksum));
  }
  if (s.guest_kind == kGuestKindLinux) {
    out += "linux:    cmdline \"" + s.linux_guest.cmdline + "\"\n" +
           Format("          kernel xxh3 %016llx, initrd xxh3 %016llx, serial %s\n",
                  static_cast<unsigned long long>(s.linux_guest.kernel_checksum),
                  static_cast<unsigned long long>(s.linux_guest.initrd_checksum),
                  s.linux_guest.serial.has_value() ? "saved" : "none");
    if (s.linux_guest.rootfs_size != 0)
      out += "          rootfs " + Size(s.linux_guest.rootfs_size) +
             Format(" (pmem, read-only, DAX), xxh3 %016llx\n",
                    static_cast<unsigned long long>(s.linux_guest.rootfs_checksum));
  }
  Pieces vm;
  vm.Add(s.vm.pic_master.has_value(), "pic_master");
  vm.Add(s.vm.pic_slave.has_value(), "pic_slave");
  vm.Add(s.vm.ioapic.has_value(), "ioapic");
  vm.Add(s.vm.pit.has_value(), "pit");
  vm.Add(s.vm.clock.has_value(), "clock");
  out += "vm state:\n" + vm.Lines("  ");
  AppendUnsupported(s.vm.unsupported, "  ", &out);
  out += Format("vcpus:    %zu\n", s.vcpus.size());
  for (size_t i = 0; i < s.vcpus.size(); ++i) out += DescribeVcpu(s.vcpus[i], i);
  return out;
}

}  // namespace kf

// VM-wide state captured for a snapshot: irqchip (PIC x2, IOAPIC), PIT and
// kvmclock. A piece is absent (std::nullopt) when the VM does not have it,
// and listed in `unsupported` with a reason when the host refused to give it.
#pragma once

#include <linux/kvm.h>

#include <optional>
#include <string>
#include <vector>

namespace kf {

struct VmState {
  std::optional<kvm_irqchip> pic_master;
  std::optional<kvm_irqchip> pic_slave;
  std::optional<kvm_irqchip> ioapic;
  std::optional<kvm_pit_state2> pit;
  std::optional<kvm_clock_data> clock;
  std::vector<std::string> unsupported;  // "what: why"
};

}  // namespace kf

// Segment descriptors as KVM's kvm_sregs wants them, shared by the guest
// loaders (bare and Linux), which both enter long mode directly.
#pragma once

#include <linux/kvm.h>

#include <cstdint>

namespace kf {

// TR for a 64-bit TSS that the loader placed at `base`: busy (VMX refuses
// to enter with an unusable TR), present.
inline kvm_segment BusyTss64(uint64_t base, uint32_t limit, uint16_t selector) {
  kvm_segment tr{};
  tr.base = base;
  tr.limit = limit;
  tr.selector = selector;
  tr.type = 0xb;  // busy 64-bit TSS
  tr.present = 1;
  return tr;
}

}  // namespace kf

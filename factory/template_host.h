// The host a template is taken on (kernel release, CPU model, PVM or not),
// recorded in every template so `template inspect` can say where it came
// from and a mismatched host can be told apart.
#pragma once

#include "snapshot/template_state.h"
#include "vmm-glue/kvm.h"

namespace kf {

TemplateHost DescribeTemplateHost(const Kvm& kvm);

}  // namespace kf

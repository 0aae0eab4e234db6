// Conversion between the C++ state structs and their protobuf form
// (proto/snapshot.proto).
//
// Encoding cannot fail. Decoding treats the input as untrusted: every bytes
// field must have exactly the size of the kernel struct this build knows
// (xsave and cpuid have their own bounds), and an error names the field,
// e.g. "vcpu 0 sregs: 300 bytes, expected 312".
#pragma once

#include <cstddef>

#include "proto/snapshot.pb.h"
#include "snapshot/template_state.h"
#include "vmm-glue/result.h"
#include "vmm-glue/devices/serial.h"
#include "vmm-glue/vcpu_state.h"
#include "vmm-glue/vm_state.h"

namespace kf {

namespace snapshot_pb = ::katafactory::snapshot::v1;

void EncodeVcpuState(const VcpuState& in, snapshot_pb::VcpuState* out);
void EncodeVmState(const VmState& in, snapshot_pb::VmState* out);
void EncodeTemplateState(const TemplateState& in, snapshot_pb::TemplateState* out);

// vcpu_id only names the vCPU in errors.
Result<VcpuState> DecodeVcpuState(const snapshot_pb::VcpuState& in, size_t vcpu_id);
Result<VmState> DecodeVmState(const snapshot_pb::VmState& in);
// Decodes every piece, then runs ValidateTemplateState.
Result<TemplateState> DecodeTemplateState(const snapshot_pb::TemplateState& in);

// The Linux guest's UART registers (vmm-glue/devices/serial.h). Decoding
// checks each register fits its byte; Serial8250::Restore checks the rest.
snapshot_pb::SerialState EncodeSerialState(const SerialState& in);
Result<SerialState> DecodeSerialState(const snapshot_pb::SerialState& in);

}  // namespace kf

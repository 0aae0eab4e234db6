// A tiny AML (ACPI Machine Language) encoder: just what a DSDT describing a
// few fixed devices needs (ACPI 6.x, chapter 20 "AML Specification", and
// 6.4 "Resource Data Types"). Each function returns the encoded bytes of one
// term; callers nest them (a Device's body is the concatenation of its
// Names). Anything the grammar would reject is an Error, never bad AML.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "vmm-glue/acpi/sdt.h"
#include "vmm-glue/result.h"

namespace kf::acpi::aml {

// PkgLength for a package whose contents after the PkgLength are
// `payload_len` bytes: the encoded length counts its own 1-4 bytes, so the
// encoding is the shortest that fits payload + itself (1 byte up to 63,
// then 2/3/4 bytes up to 2^12/2^20/2^28 - 1).
Result<Bytes> PkgLength(size_t payload_len);

// NameString: an optional root ('\') or parent ('^') prefix, then
// dot-separated NameSegs ("\\_SB_.V000", "_HID", "^COM1"). Segments shorter
// than 4 chars are padded with '_' as ASL does; a segment must start with
// A-Z or '_' and continue with A-Z, 0-9 or '_'. "\\" alone is the root.
Result<Bytes> NameString(std::string_view path);

// Integer in its shortest form: ZeroOp, OneOp, or Byte/Word/DWord/QWord
// prefix.
Bytes Integer(uint64_t value);

// String: ASCII 0x01-0x7F, NUL-terminated.
Result<Bytes> String(std::string_view s);

// EISAID("PNP0501"): three letters A-Z and four hex digits compressed into
// a DWord, as ASL's EISAID() macro does.
Result<Bytes> EisaId(std::string_view id);

// Name(name, object); `object` is an encoded data object (Integer, String,
// Buffer...).
Result<Bytes> Name(std::string_view name, const Bytes& object);
// Scope(path) { body } and Device(name) { body }; body is a TermList.
Result<Bytes> Scope(std::string_view path, const Bytes& body);
Result<Bytes> Device(std::string_view name, const Bytes& body);

// Resource descriptors for a ResourceTemplate.
Bytes Memory32Fixed(bool read_write, uint32_t base, uint32_t length);
// IO (Decode16, min, max, alignment, length).
Bytes IoPort(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length);
struct InterruptFlags {
  bool consumer = true;
  bool edge = true;
  bool active_low = false;
  bool shared = false;
};
// Interrupt (...) { gsi }: the Extended Interrupt descriptor, which takes a
// 32-bit GSI (the small IRQ descriptor only reaches ISA IRQs 0-15).
Bytes ExtendedInterrupt(InterruptFlags flags, uint32_t gsi);
// ResourceTemplate () { descriptors }: a Buffer of the descriptors followed
// by the End Tag. Its checksum byte is 0, which the spec defines as "treat
// the checksum as valid" (what iasl emits too).
Result<Bytes> ResourceTemplate(const std::vector<Bytes>& descriptors);

}  // namespace kf::acpi::aml

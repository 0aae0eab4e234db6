#include "vmm-glue/acpi/sdt.h"

namespace kf::acpi {

void Put8(Bytes& out, uint8_t v) { out.push_back(v); }

void Put16(Bytes& out, uint16_t v) {
  for (int i = 0; i < 2; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void Put32(Bytes& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void Put64(Bytes& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void PutId(Bytes& out, std::string_view s, size_t width) {
  for (size_t i = 0; i < width; ++i) out.push_back(i < s.size() ? s[i] : ' ');
}

void Patch32(Bytes& out, size_t offset, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[offset + i] = static_cast<uint8_t>(v >> (8 * i));
}

uint8_t ChecksumOf(std::span<const uint8_t> data) {
  uint8_t sum = 0;
  for (uint8_t b : data) sum = static_cast<uint8_t>(sum + b);
  return static_cast<uint8_t>(0x100 - sum);
}

void PutSdtHeader(Bytes& out, std::string_view signature, uint8_t revision,
                  std::string_view table_id) {
  PutId(out, signature, 4);
  Put32(out, 0);  // length: FinishSdt
  Put8(out, revision);
  Put8(out, 0);  // checksum: FinishSdt
  PutId(out, kOemId, 6);
  PutId(out, table_id, 8);
  Put32(out, kOemRevision);
  PutId(out, kCreatorId, 4);
  Put32(out, kCreatorRevision);
}

void FinishSdt(Bytes& table) {
  Patch32(table, kSdtLengthOffset, static_cast<uint32_t>(table.size()));
  table[kSdtChecksumOffset] = 0;
  table[kSdtChecksumOffset] = ChecksumOf(table);
}

}  // namespace kf::acpi

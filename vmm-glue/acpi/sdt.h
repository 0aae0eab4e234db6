// Byte-level helpers shared by the ACPI table builders: little-endian
// appends (ACPI is little-endian whatever the host), the 36-byte System
// Description Table header every table but the RSDP starts with, checksums.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace kf::acpi {

using Bytes = std::vector<uint8_t>;

// Ours in every header: the OEM ID (6 chars), the creator ID (4 chars).
inline constexpr std::string_view kOemId = "KATAFA";
inline constexpr std::string_view kCreatorId = "KFAC";
inline constexpr uint32_t kOemRevision = 1;
inline constexpr uint32_t kCreatorRevision = 1;

inline constexpr size_t kSdtHeaderSize = 36;
inline constexpr size_t kSdtLengthOffset = 4;
inline constexpr size_t kSdtChecksumOffset = 9;

void Put8(Bytes& out, uint8_t v);
void Put16(Bytes& out, uint16_t v);
void Put32(Bytes& out, uint32_t v);
void Put64(Bytes& out, uint64_t v);
// Appends `s` padded with spaces (or cut) to exactly `width` bytes, as
// the fixed-width ID fields want.
void PutId(Bytes& out, std::string_view s, size_t width);
void Patch32(Bytes& out, size_t offset, uint32_t v);

// The byte that makes `data` (with that byte still zero) sum to 0 mod 256.
uint8_t ChecksumOf(std::span<const uint8_t> data);

// Appends a header with length and checksum left zero; FinishSdt fills them
// once the table body is complete. `table_id` is the 8-char OEM table ID.
void PutSdtHeader(Bytes& out, std::string_view signature, uint8_t revision,
                  std::string_view table_id);
void FinishSdt(Bytes& table);

}  // namespace kf::acpi

// state.bin: a fixed 32-byte header, then the TemplateState protobuf.
//
//   offset  size  field
//        0     8  magic "KFTMPL01"
//        8     4  format_version (little endian), kTemplateFormatVersion
//       12     4  header_size, 32
//       16     8  payload_size, at most kMaxStatePayload
//       24     8  payload XXH3-64
//       32     -  payload: serialized katafactory.snapshot.v1.TemplateState
//
// The header is checked before the payload is read: a file that is not a
// template, or one of another format version, is reported as such instead
// of as a parse error.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "snapshot/template_state.h"
#include "vmm-glue/result.h"

namespace kf {

inline constexpr uint32_t kStateHeaderSize = 32;
inline constexpr uint64_t kMaxStatePayload = 64ull << 20;

struct StateHeader {
  uint32_t format_version = 0;
  uint32_t header_size = 0;
  uint64_t payload_size = 0;
  uint64_t payload_checksum = 0;
};

// The whole of state.bin for `state`. Fails if the payload exceeds the cap.
Result<std::string> EncodeStateFile(const TemplateState& state);

// Checks the header at the start of a state.bin of file_size bytes: magic,
// format version, header size, payload size cap, and that the file size is
// header plus payload. `head` holds the file's first min(file_size, 32)
// bytes.
Result<StateHeader> DecodeStateHeader(std::span<const uint8_t> head, uint64_t file_size);

// Checks the payload against the header's checksum, parses it and decodes
// it (snapshot/state_codec.h).
Result<TemplateState> DecodeStatePayload(const StateHeader& header,
                                         std::span<const uint8_t> payload);

}  // namespace kf

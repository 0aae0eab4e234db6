#include "snapshot/state_file.h"

#include <xxhash.h>

#include <cstring>

#include "proto/snapshot.pb.h"
#include "snapshot/file_io.h"
#include "snapshot/state_codec.h"

namespace kf {
namespace {
constexpr char kStateMagic[8] = {'K', 'F', 'T', 'M', 'P', 'L', '0', '1'};
constexpr size_t kOffVersion = 8, kOffHeaderSize = 12, kOffPayloadSize = 16, kOffChecksum = 24;

std::string MiB(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }
}  // namespace

Result<std::string> EncodeStateFile(const TemplateState& state) {
  snapshot_pb::TemplateState proto;
  EncodeTemplateState(state, &proto);
  std::string payload;
  if (!proto.SerializeToString(&payload)) return Error("serializing the template state failed");
  if (payload.size() > kMaxStatePayload) {
    return Error("template state is " + std::to_string(payload.size()) +
                 " bytes, more than the cap of " + MiB(kMaxStatePayload));
  }
  std::string file(kStateHeaderSize, '\0');
  auto* h = reinterpret_cast<uint8_t*>(file.data());
  std::memcpy(h, kStateMagic, sizeof(kStateMagic));
  PutLe32(h + kOffVersion, state.format_version);
  PutLe32(h + kOffHeaderSize, kStateHeaderSize);
  PutLe64(h + kOffPayloadSize, payload.size());
  PutLe64(h + kOffChecksum, XXH3_64bits(payload.data(), payload.size()));
  file += payload;
  return file;
}

Result<StateHeader> DecodeStateHeader(std::span<const uint8_t> head, uint64_t file_size) {
  if (file_size < kStateHeaderSize || head.size() < kStateHeaderSize) {
    return Error("state.bin is " + std::to_string(file_size) + " bytes, shorter than its " +
                 std::to_string(kStateHeaderSize) + "-byte header");
  }
  if (std::memcmp(head.data(), kStateMagic, sizeof(kStateMagic)) != 0) {
    return Error("state.bin does not start with \"KFTMPL01\" (not a template state file)");
  }
  StateHeader h;
  h.format_version = GetLe32(head.data() + kOffVersion);
  h.header_size = GetLe32(head.data() + kOffHeaderSize);
  h.payload_size = GetLe64(head.data() + kOffPayloadSize);
  h.payload_checksum = GetLe64(head.data() + kOffChecksum);
  // Checked before the other fields: another version may lay them out
  // differently.
  if (h.format_version != kTemplateFormatVersion) {
    return Error("template format version " + std::to_string(h.format_version) +
                 " is not supported (this build reads " + std::to_string(kTemplateFormatVersion) +
                 ")");
  }
  if (h.header_size != kStateHeaderSize) {
    return Error("state.bin header size is " + std::to_string(h.header_size) + ", expected " +
                 std::to_string(kStateHeaderSize));
  }
  if (h.payload_size > kMaxStatePayload) {
    return Error("state.bin payload size " + std::to_string(h.payload_size) +
                 " exceeds the cap of " + MiB(kMaxStatePayload));
  }
  if (file_size != kStateHeaderSize + h.payload_size) {
    return Error("state.bin is " + std::to_string(file_size) + " bytes, its header says " +
                 std::to_string(kStateHeaderSize + h.payload_size) + " (truncated or damaged)");
  }
  return h;
}

Result<TemplateState> DecodeStatePayload(const StateHeader& header,
                                         std::span<const uint8_t> payload) {
  if (payload.size() != header.payload_size) {
    return Error("state.bin payload is " + std::to_string(payload.size()) + " bytes, header says " +
                 std::to_string(header.payload_size));
  }
  if (XXH3_64bits(payload.data(), payload.size()) != header.payload_checksum) {
    return Error("state.bin payload checksum mismatch (damaged template)");
  }
  snapshot_pb::TemplateState proto;
  if (!proto.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return Error("state.bin payload is not a valid TemplateState protobuf");
  }
  if (proto.format_version() != header.format_version) {
    return Error("state.bin payload has format version " + std::to_string(proto.format_version()) +
                 ", its header " + std::to_string(header.format_version));
  }
  auto state = DecodeTemplateState(proto);
  if (!state.ok()) return state.error().Context("state.bin");
  return state;
}

}  // namespace kf

// The on-disk template: a directory holding
//   state.bin   header + TemplateState protobuf (snapshot/state_file.h)
//   memory.img  guest memory, sparse, + footer  (snapshot/memory_file.h)
// Format and validation: docs/SNAPSHOT_FORMAT.md.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "snapshot/memory_hash.h"  // HashMemory
#include "snapshot/template_state.h"
#include "vmm-glue/result.h"

namespace kf {

inline constexpr char kStateFileName[] = "state.bin";
inline constexpr char kMemoryFileName[] = "memory.img";

// Writes a template to `dir`, which must not exist. Fills in the fields the
// writer owns: format_version, template_id, mem_size (= memory.size()),
// memory_file_size, memory_checksum, created_unix_ns when 0, and one region
// {0, mem_size, 0} when `regions` is empty; then validates the state.
//
// `rootfs_image`, when not empty, is copied in as rootfs.img
// (snapshot/rootfs_image.h) and must have linux_guest.rootfs_size bytes
// hashing to linux_guest.rootfs_checksum; it is required exactly when
// rootfs_size is not 0.
//
// All files are written and fsync()ed in the sibling "<dir>.tmp-<pid>",
// which is then renamed to `dir` (without replacing anything that appeared
// meanwhile) and the parent directory fsync()ed. Whatever fails, the
// temporary directory is removed and `dir` does not exist afterwards, so a
// directory named `dir` is always a complete template.
Status WriteTemplate(const std::string& dir, TemplateState state, std::span<const uint8_t> memory,
                     const std::string& rootfs_image = "");

// Reads and validates state.bin (header, format version, size cap,
// checksum, protobuf, every state field) and checks that memory.img is
// present, has the recorded size and belongs to the same template. Guest
// memory itself is verified by CopyAndVerifyMemory.
Result<TemplateState> ReadTemplateState(const std::string& dir);

// Copies guest memory from memory.img into dest_fd (e.g. a memfd the caller
// has ftruncate()d to state.mem_size, so it reads as zeros) at the same
// offsets, skipping holes and zero pages, and checks the XXH3-64 of the
// content against state.memory_checksum. On error dest_fd holds partial or
// damaged data and must be discarded.
Status CopyAndVerifyMemory(const std::string& dir, const TemplateState& state, int dest_fd);

// A human-readable summary for `kata-factory template inspect`: kind,
// memory, vCPUs, which pieces of state are present, what the host could
// not provide and why, and the host the template was taken on.
// (template_describe.cc)
std::string DescribeTemplate(const TemplateState& state);

}  // namespace kf

// memory.img: guest memory, then a 64-byte footer.
//
//   [0, mem_size)             guest memory; 4 KiB pages of zeros are holes
//   [mem_size, mem_size+64)   footer: magic "KFMEMFT1", format version,
//                             footer size, mem_size, memory XXH3-64,
//                             template id, reserved, footer XXH3-64
//
// The footer binds the file to its state.bin (same template id, size and
// checksum), so a state.bin copied from another template is recognised as
// such instead of being taken for a truncated file. Guest memory starts at
// offset 0, so the file can be mapped as it is.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "vmm-glue/result.h"

namespace kf {

struct MemoryFooter {
  uint64_t mem_size = 0;
  uint64_t checksum = 0;  // XXH3-64 of [0, mem_size)
  uint64_t template_id = 0;
};

// Writes `memory` and the footer into fd, a new empty file. Zero pages are
// skipped so that they stay holes. `name` names the file in errors.
Status WriteMemoryFile(int fd, const std::string& name, std::span<const uint8_t> memory,
                       const MemoryFooter& footer);

// Reads the footer from the last 64 bytes of a file of file_size bytes;
// fails when there is no intact footer there.
Result<MemoryFooter> ReadMemoryFooter(int fd, uint64_t file_size, const std::string& name);

// Copies [0, mem_size) of src_fd into dest_fd at the same offsets and
// returns the XXH3-64 of that range. Holes are found with SEEK_DATA /
// SEEK_HOLE and neither read nor written (they are hashed as zeros); zero
// pages inside data are not written either, so dest_fd, which must read as
// zeros, only gets pages allocated for non-zero data.
Result<uint64_t> CopyMemoryData(int src_fd, uint64_t mem_size, int dest_fd,
                                const std::string& name);

}  // namespace kf

// A template loaded for cloning: its validated state and its memory in a
// sealed memfd. Loaded once per zygote; every clone maps the memfd privately.
#pragma once

#include <optional>
#include <string>

#include "memshare/pmem_backing.h"
#include "snapshot/template_state.h"
#include "vmm-glue/unique_fd.h"

namespace kf {

struct LoadedTemplate {
  std::string dir;
  TemplateState state;
  UniqueFd memory;  // sealed memfd of state.mem_size bytes
  // A Linux template's pmem rootfs (rootfs.img), mapped read-only and
  // shared: every clone forked from the holder maps the same page cache.
  std::optional<PmemBacking> rootfs;
};

// Reads and checks the template (version, sizes, checksums) and fills the
// memfd; maps the rootfs image, checking its size and checksum. Refuses a damaged template with an error naming what is wrong.
Result<LoadedTemplate> LoadTemplate(const std::string& dir);

}  // namespace kf

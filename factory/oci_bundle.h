// An OCI bundle's config.json, the subset the agent's CreateContainer takes
// (docs/CONTAINERS.md "Bundles"): process.args/env/cwd/user.uid/user.gid/
// terminal, hostname, root.path, mounts, linux.namespaces.
//
// The rootfs must be a directory inside the guest: no host directory can be
// shared into the VM yet (no virtio-fs/9p), so a root.path relative to the
// bundle (OCI's usual "rootfs") or inside the bundle directory is refused
// with an error that says so. Mounts the agent sets up itself (/proc, /dev,
// /dev/pts, /dev/shm, /sys) and cgroup mounts are left out.
#pragma once

#include <string>

#include "factory/agent_client.h"

namespace kf {

// Parses config.json text. `bundle_dir` is where it came from (to tell a
// host rootfs apart). container_id is left empty.
Result<agentpb::CreateContainerRequest> ParseOciConfig(const std::string& json,
                                                       const std::string& bundle_dir);
// Reads and parses BUNDLE_DIR/config.json.
Result<agentpb::CreateContainerRequest> LoadOciBundle(const std::string& bundle_dir);

}  // namespace kf

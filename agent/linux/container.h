/*
 * Containers in the Linux guest (issue #7): the table of containers and
 * their processes, and the protocol core's `container` operation, which
 * serves CreateContainer .. RemoveContainer (docs/AGENT_PROTOCOL.md).
 *
 * - A container is a process cloned into new namespaces (spawn.h: mount
 *   always; pid, uts, ipc by default) whose root is an overlay of the
 *   bundle's rootfs under a tmpfs upper layer, so nothing it writes reaches
 *   the image or another container. CreateContainer sets it up and leaves
 *   it waiting; StartContainer lets it exec; ExecProcess runs another
 *   process in its namespaces.
 * - stdin, stdout and stderr are pipes: the agent writes stdin as the host
 *   sends it (never buffering: WriteStdin takes what the pipe takes) and
 *   buffers output in bounded rings (stdio.h) the host reads.
 * - The server loop reaps children; exits are recorded for WaitProcess.
 *   WaitProcess and ReadStdout/ReadStderr with a wait answer "pending"
 *   (the server parks the connection) until the process exits, output
 *   arrives, or the wait ends.
 * - Set-up and exec failures come back from the child on a close-on-exec
 *   status pipe, so "No such file or directory" from execvp is the reply to
 *   StartContainer/ExecProcess, not a silent exit 127.
 *
 * Limits: 16 containers, 64 processes in all (each container's own
 * included), 32 KiB buffered per output stream.
 */
#ifndef KF_AGENT_LINUX_CONTAINER_H_
#define KF_AGENT_LINUX_CONTAINER_H_

#include <stdbool.h>

#include "agent/proto/agent_codec.h"

#define KF_CONTAINERS_MAX 16
#define KF_PROCESSES_MAX 64

/* default_rootfs: a bundle's rootfs when the request names none (/rootfs
 * in the guest); state_dir: where each container's tmpfs mount point is made
 * (<state_dir>/<id>, an empty directory; the tmpfs is mounted only in the
 * container's own mount namespace); no_pivot: enter roots with MS_MOVE +
 * chroot, never pivot_root (spawn.h; the initramfs's way, testable on any
 * host). Registers the child-exit hook. */
void kf_containers_init(const char* default_rootfs, const char* state_dir, bool no_pivot);

/* struct kf_core_ops.container. */
int kf_container_call(const struct kf_agent_request* req, struct kf_agent_response* resp);

#endif /* KF_AGENT_LINUX_CONTAINER_H_ */

/*
 * Starting a container's processes (the child's side of CreateContainer,
 * StartContainer and ExecProcess). The agent clones a child that:
 *
 * 1. dies with the agent (PR_SET_PDEATHSIG SIGKILL), unblocks every signal
 *    and resets their dispositions (the agent blocks SIGCHLD and ignores
 *    SIGPIPE), takes its stdio pipes as fds 0-2 and closes every other fd
 *    but its two control pipes;
 * 2. for a container (`create` set): in its new mount namespace (and pid,
 *    uts, ipc, ... as asked) makes every mount private, mounts a tmpfs on
 *    `scratch`, an overlay of `rootfs` (lower, read-only) with upper and
 *    work dirs on that tmpfs, then in it proc, sysfs (read-only), a tmpfs
 *    /dev with null, zero, full, random, urandom and tty bound from the
 *    agent's /dev, /dev/pts, /dev/shm, the bundle's mounts; sets the
 *    hostname; pivot_root(2) into it (MS_MOVE + chroot where the old root
 *    cannot be pivoted away: the initramfs's rootfs, or with no_pivot);
 *    reports "ready" and
 *    waits for a byte on its start pipe (EOF: exits);
 *    for an exec (`ns_fds` set): setns(2) into the container's mount, uts,
 *    ipc, net and cgroup namespaces (the agent did the pid one for it);
 * 3. setsid, setgroups(none), setgid, setuid, chdir(cwd), then execvp with
 *    the process's env as environ (so PATH is the container's).
 *
 * Any failure is written to the status pipe as one struct kf_spawn_report
 * (the failing step and errno) and the child exits (1 in set-up, 127 for
 * exec); the status pipe is close-on-exec, so EOF means exec succeeded.
 */
#ifndef KF_AGENT_LINUX_SPAWN_H_
#define KF_AGENT_LINUX_SPAWN_H_

#include <stdint.h>
#include <sys/types.h>

#include "agent/proto/agent_codec.h"

enum kf_spawn_stage {
  KF_SPAWN_READY = 0,        /* container set up, waiting for its start byte */
  KF_SPAWN_SETUP_FAILED = 1, /* err, what: the step */
  KF_SPAWN_EXEC_FAILED = 2   /* err, what: "exec ARGV0" or "chdir CWD", ... */
};

/* One record on the status pipe: < PIPE_BUF, so written and read whole. */
struct kf_spawn_report {
  int32_t stage;
  int32_t err; /* errno */
  char what[240];
};

struct kf_spawn {
  char* const* argv; /* NULL-terminated */
  char* const* envp;
  const char* cwd; /* "" = "/" */
  uint32_t uid, gid;
  /* The child's ends of its pipes (the caller closes its copies after). */
  int stdin_r, stdout_w, stderr_w, status_w;
  int start_r; /* -1: exec at once (ExecProcess) */
  /* A container: */
  const struct kf_agent_create_container_req* create;
  const char* rootfs;   /* the overlay's lower dir */
  const char* scratch;  /* an empty dir for the tmpfs: upper, work, root */
  const char* hostname; /* NULL: keep the guest's (no new uts namespace) */
  int new_pid_ns;       /* mount a fresh proc */
  int no_pivot;         /* MS_MOVE + chroot even where pivot_root works */
  /* An exec: namespaces to setns into (the pid one excepted). */
  const int* ns_fds;
  int ns_count;
};

/* clone(2)s the child with `clone_flags` (CLONE_NEW* | SIGCHLD); its pid,
 * or -1 with errno. */
pid_t kf_spawn(const struct kf_spawn* sp, int clone_flags);

#endif /* KF_AGENT_LINUX_SPAWN_H_ */

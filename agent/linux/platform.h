/*
 * The Linux platform's side of the protocol core (agent/core/core.h).
 *
 * Mapping of the protocol onto a Linux guest (docs/LINUX_GUESTS.md):
 * - SetIdentity: reseeds the kernel RNG (ioctl RNDADDENTROPY with the entropy,
 *   credited at 8 bits a byte, then RNDRESEEDCRNG so getrandom() output
 *   diverges at once), sets CLOCK_REALTIME from wall_clock_unix_ns (0 = not
 *   given: left alone) and the hostname (empty = left alone). Every step is
 *   tried; any that fails makes the reply an ErrorReply INTERNAL naming it,
 *   e.g. "set_identity: sethostname: Operation not permitted". The identity
 *   is recorded (GetIdentity) either way.
 * - DirtyPages and HashRange work on the agent's own buffer, an anonymous
 *   private mapping of --buffer-mib MiB: `gpa` is a byte offset into it (not
 *   a guest-physical address). DirtyPages writes 8 words of each page, as the
 *   bare agent does, so each page costs the host one copy-on-write; HashRange
 *   hashes buffer bytes with kf_hash_words.
 * - The first --init-mib MiB of the buffer are written at start with
 *   kf_init_pattern(offset): Ready.init_bytes/init_hash report them, as the
 *   bare agent reports its boot-initialised memory.
 * - Random: getrandom(2), blocking until the kernel CRNG is initialised.
 * - ReadFile: open + statx + read. dax is STATX_ATTR_DAX; size is st_size
 *   for a regular file that has one, else (/proc files, devices) what read()
 *   returned until end of file (at most 1 MiB is read). A missing file is BAD_ARGUMENT, other failures
 *   INTERNAL, both naming the step and errno.
 * - Ready.mem_total and GetStats.mem_total: sysinfo() totalram * mem_unit
 *   (MemTotal of /proc/meminfo); mem_initialised: the --init-mib bytes;
 *   Ready.boot_ns: CLOCK_BOOTTIME when the agent started listening (PID 1
 *   only, else 0).
 * - CreateContainer .. RemoveContainer: container.h (the core's container
 *   operation).
 */
#ifndef KF_AGENT_LINUX_PLATFORM_H_
#define KF_AGENT_LINUX_PLATFORM_H_

#include <stdbool.h>
#include <stdint.h>

struct kf_linux_config {
  uint64_t buffer_bytes; /* the DirtyPages/HashRange buffer */
  uint64_t init_bytes;   /* written at start, <= buffer_bytes */
  bool set_clock;        /* SetIdentity sets CLOCK_REALTIME */
  bool set_hostname;     /* SetIdentity calls sethostname */
  const char* container_rootfs; /* a bundle's rootfs when it names none */
  const char* state_dir;        /* containers' tmpfs mount points */
  bool no_pivot;                /* containers: MS_MOVE + chroot, no pivot_root */
};

/* Maps and initialises the buffer and installs the core's operations.
 * Returns 0, or -1 with errno (the mmap failed). */
int kf_linux_platform_init(const struct kf_linux_config* config);

/* Ready.boot_ns from now on (CLOCK_BOOTTIME at listen time, as PID 1). */
void kf_linux_platform_set_boot_ns(uint64_t boot_ns);

#endif /* KF_AGENT_LINUX_PLATFORM_H_ */

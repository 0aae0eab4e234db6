/*
 * What the agent does first when it is the guest's PID 1 (/init of the
 * initramfs): the file systems, the console, the kernel modules.
 */
#ifndef KF_AGENT_LINUX_PID1_H_
#define KF_AGENT_LINUX_PID1_H_

#include <stdbool.h>
#include <stddef.h>

/* Mounts devtmpfs on /dev, proc on /proc, sysfs on /sys (creating the
 * directories; "already mounted" is fine), then makes sure fds 0-2 are open,
 * on /dev/console (or /dev/kmsg, then /dev/null, when it cannot be opened).
 * Failures are logged, never fatal. */
void kf_pid1_setup_system(void);

/* Loads the modules listed in `list_path`, in order, with finit_module(2).
 * One module a line: an absolute path to an uncompressed .ko, optionally
 * followed by whitespace and its parameters ("name=value ..."); blank lines
 * and lines starting with '#' are skipped. A module that is already there
 * (EEXIST) counts as loaded. Every failure is logged with the module's path
 * and errno. Returns the number of modules that failed (0 when the list is
 * missing: logged). */
int kf_pid1_load_modules(const char* list_path);

/* The rootfs (issue #4, DAX): when the kernel command line has
 * kf_agent.rootfs=DEV, waits up to 5 s for DEV (the nvdimm bus probes
 * asynchronously, so /dev/pmem0 can appear after its module loaded), then
 * mounts it read-only on KF_ROOTFS_MOUNT with type kf_agent.rootfs_type
 * (default ext4) and the option "dax" (kf_agent.rootfs_options replaces
 * it). No fallback without DAX: a failure is logged and the directory left
 * empty. Returns 0 (mounted, or nothing asked) or -1 (logged). */
#define KF_ROOTFS_MOUNT "/rootfs"
int kf_pid1_mount_rootfs(void);

/* The value of `key=` on the kernel command line (/proc/cmdline), copied
 * into out[0..cap); false if absent. */
bool kf_pid1_cmdline_value(const char* key, char* out, size_t cap);

#endif /* KF_AGENT_LINUX_PID1_H_ */

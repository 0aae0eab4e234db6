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

/* The value of `key=` on the kernel command line (/proc/cmdline), copied
 * into out[0..cap); false if absent. */
bool kf_pid1_cmdline_value(const char* key, char* out, size_t cap);

#endif /* KF_AGENT_LINUX_PID1_H_ */

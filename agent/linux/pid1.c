/* PID 1 duties (pid1.h). */
#define _GNU_SOURCE
#include "agent/linux/pid1.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/linux/log.h"

static void mount_one(const char* source, const char* target, const char* type, unsigned long flags,
                      const char* data) {
  if (mkdir(target, 0755) != 0 && errno != EEXIST) kf_log("mkdir %s: %s", target, strerror(errno));
  if (mount(source, target, type, flags, data) != 0 && errno != EBUSY)
    kf_log("mount %s on %s: %s", type, target, strerror(errno));
}

static bool fd_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

/* Opens what is missing of fds 0-2 on `path`; true if all are open now. */
static bool stdio_on(const char* path, int flags) {
  for (int fd = 0; fd <= 2; ++fd) {
    if (fd_open(fd)) continue;
    int nfd = open(path, (fd == 0 ? O_RDONLY : flags) | O_NOCTTY);
    if (nfd < 0) return false;
    if (nfd != fd) {
      dup2(nfd, fd);
      close(nfd);
    }
  }
  return fd_open(0) && fd_open(1) && fd_open(2);
}

void kf_pid1_setup_system(void) {
  mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  mount_one("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_one("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  /* The kernel opens /dev/console for init when the initramfs has it (its
   * built-in part does); otherwise init starts with no fds at all. */
  if (!stdio_on("/dev/console", O_RDWR) && !stdio_on("/dev/kmsg", O_WRONLY))
    stdio_on("/dev/null", O_RDWR);
}

static int load_one(const char* path, const char* params) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    kf_log("module %s: open: %s (errno %d)", path, strerror(errno), errno);
    return -1;
  }
  long rc = syscall(SYS_finit_module, fd, params, 0);
  int err = errno;
  close(fd);
  if (rc == 0 || err == EEXIST) return 0;
  kf_log("module %s: finit_module: %s (errno %d)", path, strerror(err), err);
  return -1;
}

int kf_pid1_load_modules(const char* list_path) {
  FILE* f = fopen(list_path, "re");
  if (f == NULL) {
    kf_log("%s: %s: no modules loaded", list_path, strerror(errno));
    return 0;
  }
  char line[1024];
  int failed = 0, loaded = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    line[strcspn(line, "\r\n")] = 0;
    char* p = line + strspn(line, " \t");
    if (*p == 0 || *p == '#') continue;
    char* params = p + strcspn(p, " \t");
    if (*params != 0) {
      *params++ = 0;
      params += strspn(params, " \t");
    }
    if (load_one(p, params) == 0)
      ++loaded;
    else
      ++failed;
  }
  fclose(f);
  kf_log("modules: %d loaded, %d failed (%s)", loaded, failed, list_path);
  return failed;
}

int kf_pid1_mount_rootfs(void) {
  char dev[128], type[32] = "ext4", opts[128] = "dax";
  if (!kf_pid1_cmdline_value("kf_agent.rootfs", dev, sizeof dev)) return 0;
  kf_pid1_cmdline_value("kf_agent.rootfs_type", type, sizeof type);
  kf_pid1_cmdline_value("kf_agent.rootfs_options", opts, sizeof opts);
  struct stat st;
  int waited_ms = 0;
  while (stat(dev, &st) != 0 && waited_ms < 5000) {
    usleep(10 * 1000);
    waited_ms += 10;
  }
  if (mkdir(KF_ROOTFS_MOUNT, 0755) != 0 && errno != EEXIST)
    kf_log("mkdir %s: %s", KF_ROOTFS_MOUNT, strerror(errno));
  if (mount(dev, KF_ROOTFS_MOUNT, type, MS_RDONLY | MS_NODEV | MS_NOSUID, opts) != 0) {
    kf_log("rootfs: mount %s (%s, ro,%s) on %s after %d ms: %s", dev, type, opts, KF_ROOTFS_MOUNT,
           waited_ms, strerror(errno));
    return -1;
  }
  kf_log("rootfs: %s (%s, ro,%s) on %s, %d ms wait", dev, type, opts, KF_ROOTFS_MOUNT, waited_ms);
  return 0;
}

bool kf_pid1_cmdline_value(const char* key, char* out, size_t cap) {
  char buf[4096];
  int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = 0;
  size_t klen = strlen(key);
  for (char* tok = strtok(buf, " \t\n"); tok != NULL; tok = strtok(NULL, " \t\n")) {
    if (strncmp(tok, key, klen) == 0 && tok[klen] == '=') {
      snprintf(out, cap, "%s", tok + klen + 1);
      return true;
    }
  }
  return false;
}

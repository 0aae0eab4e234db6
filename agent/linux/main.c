/*
 * kf-agent-linux: the kata-factory agent of Linux guests (proto/agent.proto
 * over vsock port 1024), a static executable that is the initramfs's /init.
 * Run with --help for its options; platform.h says how each call maps onto
 * Linux, server.h how connections are served, pid1.h what it does as PID 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent/core/core.h"
#include "agent/linux/log.h"
#include "agent/linux/pid1.h"
#include "agent/linux/platform.h"
#include "agent/linux/server.h"

static const char kUsage[] =
    "Usage: kf-agent-linux [OPTIONS]\n"
    "\n"
    "The kata-factory in-guest agent for Linux guests: serves the agent protocol\n"
    "(proto/agent.proto, docs/AGENT_PROTOCOL.md) to many connections at once.\n"
    "\n"
    "As PID 1 (the /init of the guest initramfs) it first mounts devtmpfs on /dev,\n"
    "proc on /proc and sysfs on /sys, opens /dev/console as stdin/stdout/stderr if\n"
    "they are not open, loads the kernel modules listed in /etc/kf-modules\n"
    "(finit_module, in the listed order), mounts the rootfs when the kernel\n"
    "command line says kf_agent.rootfs=DEV (read-only, -o dax, on /rootfs; also\n"
    "kf_agent.rootfs_type=, default ext4, and kf_agent.rootfs_options=), then\n"
    "listens on vsock port 1024 (any\n"
    "CID). It never exits: on a fatal error it logs and sleeps forever, reaping\n"
    "children. As an ordinary process it does none of the set-up and listens on\n"
    "vsock, or with --listen-unix on a Unix socket. Log lines (\"kf-agent: ...\")\n"
    "go to stderr, the console as PID 1.\n"
    "\n"
    "Options:\n"
    "  --listen-unix PATH  Serve on a Unix stream socket at PATH instead of vsock (an\n"
    "                      existing socket there is replaced); no mounts, no modules.\n"
    "                      For tests on any machine.\n"
    "  --vsock-port N      The vsock port (default 1024).\n"
    "  --modules FILE      The module list read as PID 1 (default /etc/kf-modules):\n"
    "                      one absolute .ko path a line, then optional parameters.\n"
    "  --buffer-mib N      Size of the buffer DirtyPages and HashRange work on (their\n"
    "                      gpa is an offset in it; default 64).\n"
    "  --init-mib N        MiB of that buffer written at start (Ready.init_bytes and\n"
    "                      init_hash report them; default 0).\n"
    "  --no-set-clock      SetIdentity records the wall clock but does not set\n"
    "                      CLOCK_REALTIME (tests running as root on a shared host).\n"
    "  --no-set-hostname   SetIdentity records the hostname but does not call\n"
    "                      sethostname (same reason).\n"
    "  --container-rootfs DIR\n"
    "                      The rootfs of a CreateContainer that names none (default\n"
    "                      /rootfs, where the pmem image is mounted): a directory,\n"
    "                      the read-only lower layer of each container's overlay.\n"
    "  --state-dir DIR     Where containers' scratch mount points go, one empty\n"
    "                      directory each (default /run/kf-agent).\n"
    "  --no-pivot          Containers enter their root with MS_MOVE + chroot instead\n"
    "                      of pivot_root (what happens anyway when / is the initramfs,\n"
    "                      which pivot_root refuses); for tests of that path.\n"
    "  --version           Print the agent protocol version and exit.\n"
    "  -h, --help          Show this help and exit.\n"
    "\n"
    "As PID 1 the kernel command line may set kf_agent.buffer_mib=N and\n"
    "kf_agent.init_mib=N (options given here win); unknown arguments are logged\n"
    "and ignored, since PID 1 cannot exit.\n"
    "\n"
    "Exit status (never as PID 1): 1 fatal error (logged), 2 bad usage.\n";

struct options {
  const char* unix_path;
  const char* modules;
  const char* container_rootfs;
  const char* state_dir;
  unsigned vsock_port;
  long buffer_mib, init_mib; /* -1: not given */
  bool set_clock, set_hostname, no_pivot;
};

static void usage_error(const char* fmt, const char* arg) {
  char msg[256];
  snprintf(msg, sizeof msg, fmt, arg);
  if (kf_is_pid1) {
    kf_log("%s (ignored)", msg);
    return;
  }
  fprintf(stderr, "kf-agent-linux: %s\nTry 'kf-agent-linux --help'.\n", msg);
  exit(2);
}

static long parse_count(const char* opt, const char* s, long max) {
  char* end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != 0 || v < 0 || v > max) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s: want a number 0..%ld, got '%%s'", opt, max);
    usage_error(msg, s);
    return -1;
  }
  return v;
}

static void parse_args(int argc, char** argv, struct options* o) {
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      if (kf_is_pid1) continue;
      fputs(kUsage, stdout);
      exit(0);
    } else if (strcmp(a, "--version") == 0) {
      if (kf_is_pid1) continue;
      printf("kf-agent-linux (agent protocol version %u)\n", KF_AGENT_VERSION);
      exit(0);
    } else if (strcmp(a, "--no-set-clock") == 0) {
      o->set_clock = false;
    } else if (strcmp(a, "--no-set-hostname") == 0) {
      o->set_hostname = false;
    } else if (strcmp(a, "--no-pivot") == 0) {
      o->no_pivot = true;
    } else if (strcmp(a, "--listen-unix") == 0 || strcmp(a, "--vsock-port") == 0 ||
               strcmp(a, "--modules") == 0 || strcmp(a, "--buffer-mib") == 0 ||
               strcmp(a, "--init-mib") == 0 || strcmp(a, "--container-rootfs") == 0 ||
               strcmp(a, "--state-dir") == 0) {
      if (i + 1 >= argc) {
        usage_error("%s needs an argument", a);
        continue;
      }
      const char* v = argv[++i];
      if (strcmp(a, "--listen-unix") == 0)
        o->unix_path = v;
      else if (strcmp(a, "--modules") == 0)
        o->modules = v;
      else if (strcmp(a, "--container-rootfs") == 0)
        o->container_rootfs = v;
      else if (strcmp(a, "--state-dir") == 0)
        o->state_dir = v;
      else if (strcmp(a, "--vsock-port") == 0) {
        long p = parse_count(a, v, 0xfffffffe);
        if (p >= 0) o->vsock_port = (unsigned)p;
      } else if (strcmp(a, "--buffer-mib") == 0)
        o->buffer_mib = parse_count(a, v, 1 << 20);
      else
        o->init_mib = parse_count(a, v, 1 << 20);
    } else {
      usage_error("unknown argument '%s'", a);
    }
  }
}

/* kf_agent.<key>=N from the kernel command line, or -1. */
static long cmdline_mib(const char* key) {
  char v[32];
  if (!kf_pid1_cmdline_value(key, v, sizeof v)) return -1;
  return parse_count(key, v, 1 << 20);
}

static int listen_unix(const char* path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) kf_fatal("--listen-unix %s: path too long", path);
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) kf_fatal("socket(AF_UNIX): %s", strerror(errno));
  struct stat st;
  if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
  if (bind(fd, (struct sockaddr*)&sa, sizeof sa) != 0)
    kf_fatal("bind %s: %s", path, strerror(errno));
  if (listen(fd, 128) != 0) kf_fatal("listen %s: %s", path, strerror(errno));
  return fd;
}

static int listen_vsock(unsigned port, int modules_failed) {
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    kf_fatal("socket(AF_VSOCK): %s (%d module(s) failed to load)", strerror(errno), modules_failed);
  struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_port = port, .svm_cid = VMADDR_CID_ANY};
  if (bind(fd, (struct sockaddr*)&sa, sizeof sa) != 0)
    kf_fatal("bind vsock port %u: %s", port, strerror(errno));
  if (listen(fd, 128) != 0) kf_fatal("listen vsock port %u: %s", port, strerror(errno));
  return fd;
}

/* The guest's own CID from the vsock transport, VMADDR_CID_ANY if none is
 * there (no virtio vsock device, or its driver did not load). */
static unsigned local_cid(void) {
  unsigned cid = VMADDR_CID_ANY;
  int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return cid;
  if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) != 0) cid = VMADDR_CID_ANY;
  close(fd);
  return cid;
}

int main(int argc, char** argv) {
  kf_is_pid1 = getpid() == 1;
  struct options o = {NULL, "/etc/kf-modules", KF_ROOTFS_MOUNT, "/run/kf-agent",
                      KF_AGENT_VSOCK_PORT, -1, -1, true, true, false};
  parse_args(argc, argv, &o);
  signal(SIGPIPE, SIG_IGN);

  bool init = kf_is_pid1 && o.unix_path == NULL;
  int modules_failed = 0;
  if (init) {
    kf_pid1_setup_system();
    kf_log("starting as PID 1 (agent protocol version %u)", KF_AGENT_VERSION);
    if (o.buffer_mib < 0) o.buffer_mib = cmdline_mib("kf_agent.buffer_mib");
    if (o.init_mib < 0) o.init_mib = cmdline_mib("kf_agent.init_mib");
    modules_failed = kf_pid1_load_modules(o.modules);
    kf_pid1_mount_rootfs();
  }
  if (o.buffer_mib < 0) o.buffer_mib = 64;
  if (o.init_mib < 0) o.init_mib = 0;
  if (o.init_mib > o.buffer_mib) {
    kf_log("init_mib %ld > buffer_mib %ld: initialising the whole buffer", o.init_mib,
           o.buffer_mib);
    o.init_mib = o.buffer_mib;
  }
  struct kf_linux_config config = {(uint64_t)o.buffer_mib << 20, (uint64_t)o.init_mib << 20,
                                   o.set_clock, o.set_hostname, o.container_rootfs,
                                   o.state_dir, o.no_pivot};
  if (kf_linux_platform_init(&config) != 0)
    kf_fatal("mmap of the %ld MiB buffer: %s", o.buffer_mib, strerror(errno));

  int fd;
  if (o.unix_path != NULL) {
    fd = listen_unix(o.unix_path);
    kf_log("listening on unix socket %s", o.unix_path);
  } else {
    fd = listen_vsock(o.vsock_port, modules_failed);
    unsigned cid = local_cid();
    if (cid == VMADDR_CID_ANY && modules_failed != 0)
      kf_fatal("vsock cannot work: no vsock transport (%d module(s) failed to load)",
               modules_failed);
    struct timespec ts;
    uint64_t boot_ns = 0;
    if (init && clock_gettime(CLOCK_BOOTTIME, &ts) == 0)
      boot_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    kf_linux_platform_set_boot_ns(boot_ns);
    if (cid == VMADDR_CID_ANY)
      kf_log("warning: no vsock device yet (guest CID unknown); listening on port %u anyway",
             o.vsock_port);
    else
      kf_log("listening on vsock port %u, guest CID %u, %llu ms after boot", o.vsock_port, cid,
             (unsigned long long)(boot_ns / 1000000u));
  }
  const char* why = "";
  kf_server_run(fd, &why);
  kf_fatal("%s: %s", why, strerror(errno));
}

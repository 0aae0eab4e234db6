/* The child's side of container processes (spawn.h). Runs between clone
 * and exec: only system calls and stack buffers, nothing of the agent's
 * state is changed (the child has its own copy of memory anyway). */
#define _GNU_SOURCE
#include "agent/linux/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char** environ;

#define CHILD_STACK (256u * 1024u)

static void report(const struct kf_spawn* sp, int stage, int err, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void report(const struct kf_spawn* sp, int stage, int err, const char* fmt, ...) {
  struct kf_spawn_report r;
  memset(&r, 0, sizeof r);
  r.stage = stage;
  r.err = err;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r.what, sizeof r.what, fmt, ap);
  va_end(ap);
  ssize_t n;
  do n = write(sp->status_w, &r, sizeof r);
  while (n < 0 && errno == EINTR);
}

/* Fails the set-up: "STEP: errno" on the status pipe, exit 1. */
__attribute__((noreturn)) static void setup_failed(const struct kf_spawn* sp, const char* fmt,
                                                   const char* arg) {
  int err = errno;
  char what[200];
  if (snprintf(what, sizeof what, fmt, arg) < 0) what[0] = 0;
  report(sp, KF_SPAWN_SETUP_FAILED, err, "%s", what);
  _exit(1);
}

static void close_from_to(unsigned lo, unsigned hi) {
  if (lo > hi) return;
  if (syscall(SYS_close_range, lo, hi, 0) == 0) return;
  for (unsigned fd = lo; fd <= hi && fd < 65536; ++fd) close((int)fd);
}

/* fds 0-2 = the pipes, the control pipes kept, everything else closed (the
 * agent's sockets, other containers' pipes: a stdin left open here would
 * keep another container's reader from seeing EOF). */
static void child_fds(const struct kf_spawn* sp) {
  if (dup2(sp->stdin_r, 0) < 0 || dup2(sp->stdout_w, 1) < 0 || dup2(sp->stderr_w, 2) < 0)
    setup_failed(sp, "dup2 stdio%s", "");
  int a = sp->status_w, b = sp->start_r >= 0 ? sp->start_r : sp->status_w;
  if (a > b) {
    int t = a;
    a = b;
    b = t;
  }
  close_from_to(3, (unsigned)a - 1);
  close_from_to((unsigned)a + 1, (unsigned)b - 1);
  close_from_to((unsigned)b + 1, ~0u);
}

static void child_signals(void) {
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL); /* SIGKILL, SIGSTOP: EINVAL */
}

/* out = a + b + c (a PATH_MAX buffer, none of them); a longer path fails
 * the set-up. */
static void join3(const struct kf_spawn* sp, char* out, const char* a, const char* b,
                  const char* c) {
  int n = snprintf(out, PATH_MAX, "%s%s%s", a, b, c);
  if (n < 0 || n >= PATH_MAX) {
    errno = ENAMETOOLONG;
    setup_failed(sp, "path %s", a);
  }
}

static void join(const struct kf_spawn* sp, char* out, const char* a, const char* b) {
  join3(sp, out, a, b, "");
}

static void make_dir(const struct kf_spawn* sp, const char* path, mode_t mode) {
  if (mkdir(path, mode) != 0 && errno != EEXIST) setup_failed(sp, "mkdir %s", path);
}

/* mkdir -p of an absolute path (for mount points the bundle names). */
static void make_dirs(const struct kf_spawn* sp, const char* path) {
  char buf[PATH_MAX];
  join(sp, buf, path, "");
  for (char* p = buf + 1; *p != 0; ++p) {
    if (*p != '/') continue;
    *p = 0;
    make_dir(sp, buf, 0755);
    *p = '/';
  }
  make_dir(sp, buf, 0755);
}

static void do_mount(const struct kf_spawn* sp, const char* src, const char* target,
                     const char* type, unsigned long flags, const char* data) {
  if (mount(src, target, type, flags, data) != 0) {
    char what[2 * PATH_MAX];
    int n = snprintf(what, sizeof what, "mount %s on %s", type != NULL ? type : src, target);
    setup_failed(sp, "%s", n > 0 ? what : "mount");
  }
}

/* /dev: a tmpfs with the usual nodes bound from the agent's /dev. */
static void setup_dev(const struct kf_spawn* sp, const char* root) {
  static const char* const kNodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
  char dev[PATH_MAX], path[PATH_MAX], src[PATH_MAX];
  join(sp, dev, root, "/dev");
  make_dir(sp, dev, 0755);
  do_mount(sp, "tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=65536k");
  for (size_t i = 0; i < sizeof kNodes / sizeof kNodes[0]; ++i) {
    join3(sp, path, dev, "/", kNodes[i]);
    join(sp, src, "/dev/", kNodes[i]);
    struct stat st;
    if (stat(src, &st) != 0) continue; /* not in this /dev (no tty without a console) */
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) setup_failed(sp, "create %s", path);
    close(fd);
    do_mount(sp, src, path, NULL, MS_BIND, NULL);
  }
  static const char* const kLinks[][2] = {{"/proc/self/fd", "fd"},
                                          {"/proc/self/fd/0", "stdin"},
                                          {"/proc/self/fd/1", "stdout"},
                                          {"/proc/self/fd/2", "stderr"},
                                          {"pts/ptmx", "ptmx"}};
  for (size_t i = 0; i < sizeof kLinks / sizeof kLinks[0]; ++i) {
    join3(sp, path, dev, "/", kLinks[i][1]);
    if (symlink(kLinks[i][0], path) != 0 && errno != EEXIST) setup_failed(sp, "symlink %s", path);
  }
  join(sp, path, dev, "/pts");
  make_dir(sp, path, 0755);
  /* No ptys are handed out (terminal is refused): a devpts is a courtesy. */
  mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
  join(sp, path, dev, "/shm");
  make_dir(sp, path, 01777);
  do_mount(sp, "shm", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
}

/* One of the bundle's mounts, under root. Options: flags by name, the rest
 * joined with commas as the file system's data. */
static void setup_mount(const struct kf_spawn* sp, const char* root,
                        const struct kf_agent_mount* m) {
  unsigned long flags = 0;
  int bind = strcmp(m->type, "bind") == 0, ro = 0;
  char data[KF_AGENT_OPTV_BYTES + 1] = "";
  for (const char* o = kf_agent_strv_next(&m->options, NULL); o != NULL;
       o = kf_agent_strv_next(&m->options, o)) {
    if (strcmp(o, "ro") == 0)
      ro = 1;
    else if (strcmp(o, "rw") == 0)
      ro = 0;
    else if (strcmp(o, "nosuid") == 0)
      flags |= MS_NOSUID;
    else if (strcmp(o, "nodev") == 0)
      flags |= MS_NODEV;
    else if (strcmp(o, "noexec") == 0)
      flags |= MS_NOEXEC;
    else if (strcmp(o, "bind") == 0)
      bind = 1;
    else if (strcmp(o, "rbind") == 0)
      bind = 2;
    else if (strcmp(o, "private") == 0 || strcmp(o, "rprivate") == 0)
      continue;
    else {
      size_t n = strlen(data);
      snprintf(data + n, sizeof data - n, "%s%s", n != 0 ? "," : "", o);
    }
  }
  char target[PATH_MAX];
  join(sp, target, root, m->destination);
  struct stat st;
  if (bind && stat(m->source, &st) == 0 && !S_ISDIR(st.st_mode)) {
    char parent[sizeof target];
    join(sp, parent, target, "");
    *strrchr(parent, '/') = 0;
    make_dirs(sp, parent);
    int fd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) setup_failed(sp, "create %s", target);
    close(fd);
  } else {
    make_dirs(sp, target);
  }
  /* The target was resolved here, before the switch to the new root: a
   * symlink in the image must not lead it out of that root. */
  char real[PATH_MAX];
  size_t rlen = strlen(root);
  if (realpath(target, real) == NULL || strncmp(real, root, rlen) != 0 ||
      (real[rlen] != 0 && real[rlen] != '/')) {
    errno = EXDEV;
    setup_failed(sp, "mount destination %s leads out of the container's root", m->destination);
  }
  join(sp, target, real, "");
  if (bind) {
    do_mount(sp, m->source, target, NULL, MS_BIND | (bind == 2 ? MS_REC : 0), NULL);
    if (ro || flags != 0)
      do_mount(sp, NULL, target, NULL, MS_BIND | MS_REMOUNT | flags | (ro ? MS_RDONLY : 0), NULL);
  } else {
    do_mount(sp, m->source[0] != 0 ? m->source : m->type, target, m->type,
             flags | (ro ? MS_RDONLY : 0), data[0] != 0 ? data : NULL);
  }
}

/* Into the new root: pivot_root(".", ".") then detach the old root below;
 * where pivot_root refuses (EINVAL: the initramfs rootfs cannot be
 * unmounted), move the new root over "/" and chroot, as runc does. */
static void enter_root(const struct kf_spawn* sp, const char* root) {
  if (chdir(root) != 0) setup_failed(sp, "chdir %s", root);
  if (!sp->no_pivot && syscall(SYS_pivot_root, ".", ".") == 0) {
    if (umount2(".", MNT_DETACH) != 0) setup_failed(sp, "umount2 old root%s", "");
  } else if (sp->no_pivot || errno == EINVAL) {
    if (mount(".", "/", NULL, MS_MOVE, NULL) != 0) setup_failed(sp, "mount --move %s /", root);
    if (chroot(".") != 0) setup_failed(sp, "chroot %s", root);
  } else {
    setup_failed(sp, "pivot_root %s", root);
  }
  if (chdir("/") != 0) setup_failed(sp, "chdir /%s", "");
}

static void setup_container(const struct kf_spawn* sp) {
  const struct kf_agent_create_container_req* c = sp->create;
  char upper[PATH_MAX], work[PATH_MAX], root[PATH_MAX];
  char opts[3 * PATH_MAX], path[PATH_MAX];
  /* Nothing mounted here may reach the agent's namespace, or back. */
  do_mount(sp, NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
  do_mount(sp, "tmpfs", sp->scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700");
  join(sp, upper, sp->scratch, "/upper");
  join(sp, work, sp->scratch, "/work");
  join(sp, root, sp->scratch, "/root");
  make_dir(sp, upper, 0755);
  make_dir(sp, work, 0755);
  make_dir(sp, root, 0755);
  if (snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", sp->rootfs, upper, work) <
      0)
    setup_failed(sp, "overlay options for %s", sp->rootfs);
  if (mount("overlay", root, "overlay", 0, opts) != 0)
    setup_failed(sp, "mount overlay (lower %s, upper on tmpfs)", sp->rootfs);
  join(sp, path, root, "/proc");
  make_dir(sp, path, 0555);
  if (sp->new_pid_ns)
    do_mount(sp, "proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  else
    do_mount(sp, "/proc", path, NULL, MS_BIND | MS_REC, NULL);
  join(sp, path, root, "/sys");
  make_dir(sp, path, 0555);
  do_mount(sp, "sysfs", path, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL);
  setup_dev(sp, root);
  join(sp, path, root, "/tmp");
  make_dir(sp, path, 01777);
  for (uint32_t i = 0; i < c->mounts_count; ++i) setup_mount(sp, root, &c->mounts[i]);
  if (sp->hostname != NULL && sethostname(sp->hostname, strlen(sp->hostname)) != 0)
    setup_failed(sp, "sethostname %s", sp->hostname);
  enter_root(sp, root);
}

__attribute__((noreturn)) static void exec_failed(const struct kf_spawn* sp, const char* what,
                                                  const char* arg) {
  report(sp, KF_SPAWN_EXEC_FAILED, errno, "%s %s", what, arg);
  _exit(127);
}

__attribute__((noreturn)) static void run_process(const struct kf_spawn* sp) {
  setsid();
  if (setgroups(0, NULL) != 0) exec_failed(sp, "setgroups", "(none)");
  char id[16];
  snprintf(id, sizeof id, "%u", sp->gid);
  if (setgid(sp->gid) != 0) exec_failed(sp, "setgid", id);
  snprintf(id, sizeof id, "%u", sp->uid);
  if (setuid(sp->uid) != 0) exec_failed(sp, "setuid", id);
  const char* cwd = sp->cwd[0] != 0 ? sp->cwd : "/";
  if (chdir(cwd) != 0) exec_failed(sp, "chdir", cwd);
  environ = (char**)sp->envp;
  execvp(sp->argv[0], sp->argv);
  exec_failed(sp, "exec", sp->argv[0]);
}

static int child_main(void* arg) {
  const struct kf_spawn* sp = arg;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  child_signals();
  /* An exec joins the container first: the namespace fds are about to go. */
  for (int i = 0; i < sp->ns_count; ++i) {
    if (setns(sp->ns_fds[i], 0) != 0) setup_failed(sp, "setns into the container%s", "");
  }
  child_fds(sp);
  if (sp->create != NULL) setup_container(sp);
  if (sp->start_r >= 0) {
    report(sp, KF_SPAWN_READY, 0, "ready");
    char b;
    ssize_t n;
    do n = read(sp->start_r, &b, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) _exit(0); /* removed before it started */
    close(sp->start_r);
  }
  run_process(sp);
}

pid_t kf_spawn(const struct kf_spawn* sp, int clone_flags) {
  void* stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return -1;
  pid_t pid = clone(child_main, (char*)stack + CHILD_STACK, clone_flags, (void*)sp);
  int e = errno;
  munmap(stack, CHILD_STACK); /* the child has its own copy */
  errno = e;
  return pid;
}

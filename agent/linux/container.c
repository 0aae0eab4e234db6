/* Containers and their processes (container.h). */
#define _GNU_SOURCE
#include "agent/linux/container.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/core/core.h"
#include "agent/linux/log.h"
#include "agent/linux/server.h"
#include "agent/linux/spawn.h"
#include "agent/linux/stdio.h"

/* How long CreateContainer/StartContainer/ExecProcess wait for the child's
 * report: set-up is a few mounts, exec a few system calls. */
#define SPAWN_TIMEOUT_MS 10000
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

enum proc_state { P_FREE, P_CREATED, P_RUNNING, P_EXITED };

struct container;

struct proc {
  enum proc_state state;
  struct container* c;
  char exec_id[KF_AGENT_ID_MAX]; /* "" for the container's own */
  pid_t pid;
  int status; /* waitpid's, once P_EXITED */
  bool exit_reported;
  int stdin_fd;            /* the pipe's write end; -1 once closed */
  int start_fd, status_fd; /* the container's own, until started */
  struct kf_stream out, err;
};

/* Namespaces an ExecProcess joins, in setns order (mount last). */
enum { NS_UTS, NS_IPC, NS_NET, NS_CGROUP, NS_MNT, NS_COUNT };
static const char* const kNsNames[NS_COUNT] = {"uts", "ipc", "net", "cgroup", "mnt"};
static const int kNsFlags[NS_COUNT] = {CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWCGROUP,
                                       CLONE_NEWNS};

struct container {
  bool used;
  char id[KF_AGENT_ID_MAX];
  struct proc* init;
  int ns_fds[NS_COUNT]; /* -1: shares the agent's */
  int pid_ns_fd;        /* -1: no pid namespace of its own */
  char scratch[KF_AGENT_PATH_MAX + KF_AGENT_ID_MAX + 2];
};

static struct {
  char default_rootfs[KF_AGENT_PATH_MAX];
  char state_dir[KF_AGENT_PATH_MAX];
  bool no_pivot;
  int self_pid_ns;
  struct container containers[KF_CONTAINERS_MAX];
  struct proc procs[KF_PROCESSES_MAX];
} g;

/* ---- helpers ---------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int fail(struct kf_agent_response* resp, int code,
                                                      const char* fmt, ...) {
  char msg[KF_AGENT_ERROR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  kf_core_set_error(&resp->u.error, code, msg);
  return -1;
}

/* The ErrorCode for an errno from a child or a path check. */
static int errno_code(int err) {
  switch (err) {
    case ENOENT:
      return KF_AGENT_ERR_NOT_FOUND;
    case EACCES:
    case EPERM:
    case ENOEXEC:
    case ENOTDIR:
    case ELOOP:
    case ENAMETOOLONG:
    case EXDEV:
    case EINVAL:
      return KF_AGENT_ERR_BAD_ARGUMENT;
    default:
      return KF_AGENT_ERR_INTERNAL;
  }
}

static void close_fd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static struct container* find_container(const char* id) {
  for (int i = 0; i < KF_CONTAINERS_MAX; ++i) {
    if (g.containers[i].used && strcmp(g.containers[i].id, id) == 0) return &g.containers[i];
  }
  return NULL;
}

static struct proc* find_proc(struct container* c, const char* exec_id) {
  if (exec_id[0] == 0) return c->init;
  for (int i = 0; i < KF_PROCESSES_MAX; ++i) {
    struct proc* p = &g.procs[i];
    if (p->state != P_FREE && p->c == c && strcmp(p->exec_id, exec_id) == 0) return p;
  }
  return NULL;
}

static struct proc* new_proc(struct container* c, const char* exec_id) {
  for (int i = 0; i < KF_PROCESSES_MAX; ++i) {
    struct proc* p = &g.procs[i];
    if (p->state != P_FREE) continue;
    memset(p, 0, sizeof *p);
    p->c = c;
    snprintf(p->exec_id, sizeof p->exec_id, "%s", exec_id);
    p->stdin_fd = p->start_fd = p->status_fd = p->out.fd = p->err.fd = -1;
    p->pid = -1;
    return p;
  }
  return NULL;
}

static void free_proc(struct proc* p) {
  close_fd(&p->stdin_fd);
  close_fd(&p->start_fd);
  close_fd(&p->status_fd);
  kf_stream_close(&p->out);
  kf_stream_close(&p->err);
  p->state = P_FREE;
  p->c = NULL;
}

/* An exec's record goes once the host has its exit and all its output. */
static void maybe_free_exec(struct proc* p) {
  if (p->state == P_EXITED && p->exec_id[0] != 0 && p->exit_reported &&
      kf_stream_drained(&p->out) && kf_stream_drained(&p->err))
    free_proc(p);
}

static void record_exit(struct proc* p, int status) {
  p->state = P_EXITED;
  p->status = status;
  kf_server_wake();
}

/* Reaps p, which is exiting (it reported a failure and _exits). */
static void reap(struct proc* p) {
  if ((p->state != P_CREATED && p->state != P_RUNNING) || p->pid <= 0) return;
  int status = 0;
  pid_t r;
  do r = waitpid(p->pid, &status, 0);
  while (r < 0 && errno == EINTR);
  record_exit(p, r == p->pid ? status : (SIGKILL & 0x7f));
}

/* Kills and reaps p now (SIGKILL cannot be caught: it dies at once). */
static void kill_and_reap(struct proc* p) {
  if ((p->state != P_CREATED && p->state != P_RUNNING) || p->pid <= 0) return;
  kill(p->pid, SIGKILL);
  reap(p);
}

static void on_child_exit(int pid, int status) {
  for (int i = 0; i < KF_PROCESSES_MAX; ++i) {
    struct proc* p = &g.procs[i];
    if ((p->state == P_CREATED || p->state == P_RUNNING) && p->pid == pid) {
      record_exit(p, status);
      return;
    }
  }
}

/* One report from a child's status pipe: 1 (in *r), 0 (EOF: it exec'd), -1
 * (no answer in time, or a short read). */
static int read_report(int fd, struct kf_spawn_report* r) {
  struct pollfd pfd = {fd, POLLIN, 0};
  int rc;
  do rc = poll(&pfd, 1, SPAWN_TIMEOUT_MS);
  while (rc < 0 && errno == EINTR);
  if (rc <= 0) return -1;
  ssize_t n;
  do n = read(fd, r, sizeof *r);
  while (n < 0 && errno == EINTR);
  if (n == 0) return 0;
  if (n != (ssize_t)sizeof *r) return -1;
  r->what[sizeof r->what - 1] = 0;
  return 1;
}

/* argv and envp for the child: pointers into the request (the child gets a
 * copy of memory, so they stay valid there); PATH added when env has none. */
static char* g_argv[KF_AGENT_ARGV_ENTRIES + 1];
static char* g_envp[KF_AGENT_ARGV_ENTRIES + 2];

static void build_argv_envp(const struct kf_agent_process* p) {
  int n = 0;
  for (const char* a = kf_agent_strv_next(&p->args, NULL); a != NULL;
       a = kf_agent_strv_next(&p->args, a))
    g_argv[n++] = (char*)a;
  g_argv[n] = NULL;
  n = 0;
  bool path = false;
  for (const char* e = kf_agent_strv_next(&p->env, NULL); e != NULL;
       e = kf_agent_strv_next(&p->env, e)) {
    if (strncmp(e, "PATH=", 5) == 0) path = true;
    g_envp[n++] = (char*)e;
  }
  if (!path) g_envp[n++] = (char*)DEFAULT_PATH;
  g_envp[n] = NULL;
}

/* The pipes of a new process: [0] stdin, [1] stdout, [2] stderr, [3]
 * status, [4] start; each {read end, write end}, close-on-exec. */
struct pipes {
  int fd[5][2];
};

static void close_pipes(struct pipes* pp) {
  for (int i = 0; i < 5; ++i) {
    close_fd(&pp->fd[i][0]);
    close_fd(&pp->fd[i][1]);
  }
}

static int open_pipes(struct pipes* pp, int count) {
  for (int i = 0; i < 5; ++i) pp->fd[i][0] = pp->fd[i][1] = -1;
  for (int i = 0; i < count; ++i) {
    if (pipe2(pp->fd[i], O_CLOEXEC) != 0) {
      int e = errno;
      close_pipes(pp);
      errno = e;
      return -1;
    }
  }
  return 0;
}

/* After the clone: the agent keeps stdin's write end, the output read
 * ends, status's read end and start's write end; the rest was the child's. */
static void close_child_ends(struct pipes* pp) {
  close_fd(&pp->fd[0][0]);
  close_fd(&pp->fd[1][1]);
  close_fd(&pp->fd[2][1]);
  close_fd(&pp->fd[3][1]);
  close_fd(&pp->fd[4][0]);
}

/* Hands the agent's ends to p: stdin (non-blocking) and the two streams. */
static int adopt_pipes(struct proc* p, struct pipes* pp) {
  p->stdin_fd = pp->fd[0][1];
  pp->fd[0][1] = -1;
  fcntl(p->stdin_fd, F_SETFL, O_NONBLOCK);
  int rc = kf_stream_open(&p->out, pp->fd[1][0]);
  pp->fd[1][0] = -1;
  if (rc == 0) rc = kf_stream_open(&p->err, pp->fd[2][0]);
  pp->fd[2][0] = -1;
  return rc;
}

/* ---- CreateContainer --------------------------------------------------- */

static int parse_namespaces(const struct kf_agent_optv* ns, int* flags,
                            struct kf_agent_response* resp) {
  if (ns->count == 0) {
    *flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
    return 0;
  }
  *flags = CLONE_NEWNS;
  for (const char* n = kf_agent_strv_next(ns, NULL); n != NULL; n = kf_agent_strv_next(ns, n)) {
    if (strcmp(n, "mount") == 0) continue;
    if (strcmp(n, "pid") == 0)
      *flags |= CLONE_NEWPID;
    else if (strcmp(n, "uts") == 0)
      *flags |= CLONE_NEWUTS;
    else if (strcmp(n, "ipc") == 0)
      *flags |= CLONE_NEWIPC;
    else if (strcmp(n, "network") == 0)
      *flags |= CLONE_NEWNET;
    else if (strcmp(n, "cgroup") == 0)
      *flags |= CLONE_NEWCGROUP;
    else if (strcmp(n, "user") == 0)
      return fail(resp, KF_AGENT_ERR_UNSUPPORTED, "namespaces: user namespaces are not supported");
    else
      return fail(resp, KF_AGENT_ERR_BAD_ARGUMENT, "namespaces: unknown namespace '%.40s'", n);
  }
  return 0;
}

static int check_rootfs(const char* rootfs, const char* id, struct kf_agent_response* resp) {
  struct stat st;
  if (strpbrk(rootfs, ",:\\") != NULL)
    return fail(resp, KF_AGENT_ERR_BAD_ARGUMENT,
                "create %s: rootfs %.80s: ',' ':' '\\' cannot be an overlay lower dir", id, rootfs);
  if (stat(rootfs, &st) != 0)
    return fail(resp, errno_code(errno), "create %s: rootfs %.80s: %s", id, rootfs,
                strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return fail(resp, KF_AGENT_ERR_BAD_ARGUMENT, "create %s: rootfs %.80s is not a directory", id,
                rootfs);
  return 0;
}

/* mkdir -p of the state dir (the initramfs may have no /run). */
static int make_state_dir(void) {
  char path[sizeof g.state_dir];
  snprintf(path, sizeof path, "%s", g.state_dir);
  for (char* p = path + 1;; ++p) {
    if (*p != '/' && *p != 0) continue;
    char c = *p;
    *p = 0;
    if (mkdir(path, 0700) != 0 && errno != EEXIST) return -1;
    if (c == 0) return 0;
    *p = c;
  }
}

static void release_container(struct container* c) {
  for (int i = 0; i < NS_COUNT; ++i) close_fd(&c->ns_fds[i]);
  close_fd(&c->pid_ns_fd);
  if (c->scratch[0] != 0 && rmdir(c->scratch) != 0 && errno != ENOENT)
    kf_log("container %s: rmdir %s: %s", c->id, c->scratch, strerror(errno));
  c->used = false;
  c->init = NULL;
}

static int create_container(const struct kf_agent_create_container_req* r,
                            struct kf_agent_response* resp) {
  const char* id = r->container_id;
  if (find_container(id) != NULL)
    return fail(resp, KF_AGENT_ERR_ALREADY_EXISTS, "create %s: container exists", id);
  if (r->process.terminal)
    return fail(resp, KF_AGENT_ERR_UNSUPPORTED,
                "create %s: terminal: no pty support, stdio is pipes", id);
  int flags;
  if (parse_namespaces(&r->namespaces, &flags, resp) != 0) return -1;
  const char* rootfs = r->rootfs[0] != 0 ? r->rootfs : g.default_rootfs;
  if (check_rootfs(rootfs, id, resp) != 0) return -1;

  struct container* c = NULL;
  for (int i = 0; i < KF_CONTAINERS_MAX && c == NULL; ++i) {
    if (!g.containers[i].used) c = &g.containers[i];
  }
  struct proc* p = c != NULL ? new_proc(c, "") : NULL;
  if (p == NULL)
    return fail(resp, KF_AGENT_ERR_RESOURCE_EXHAUSTED,
                "create %s: at most %d containers, %d processes", id, KF_CONTAINERS_MAX,
                KF_PROCESSES_MAX);
  memset(c, 0, sizeof *c);
  c->used = true;
  snprintf(c->id, sizeof c->id, "%s", id);
  for (int i = 0; i < NS_COUNT; ++i) c->ns_fds[i] = -1;
  c->pid_ns_fd = -1;
  c->init = p;
  p->state = P_CREATED; /* holds the slot; P_FREE again on failure */

  if (make_state_dir() != 0) {
    int e = errno;
    free_proc(p);
    release_container(c);
    return fail(resp, KF_AGENT_ERR_INTERNAL, "create %s: mkdir %s: %s", id, g.state_dir,
                strerror(e));
  }
  snprintf(c->scratch, sizeof c->scratch, "%s/%s", g.state_dir, id);
  if (mkdir(c->scratch, 0700) != 0 && errno != EEXIST) {
    int e = errno;
    c->scratch[0] = 0;
    free_proc(p);
    release_container(c);
    return fail(resp, KF_AGENT_ERR_INTERNAL, "create %s: mkdir: %s", id, strerror(e));
  }

  struct pipes pp;
  if (open_pipes(&pp, 5) != 0) {
    int e = errno;
    free_proc(p);
    release_container(c);
    return fail(resp, KF_AGENT_ERR_INTERNAL, "create %s: pipe2: %s", id, strerror(e));
  }
  build_argv_envp(&r->process);
  struct kf_spawn sp = {
      .argv = g_argv,
      .envp = g_envp,
      .cwd = r->process.cwd,
      .uid = r->process.uid,
      .gid = r->process.gid,
      .stdin_r = pp.fd[0][0],
      .stdout_w = pp.fd[1][1],
      .stderr_w = pp.fd[2][1],
      .status_w = pp.fd[3][1],
      .start_r = pp.fd[4][0],
      .create = r,
      .rootfs = rootfs,
      .scratch = c->scratch,
      .hostname = (flags & CLONE_NEWUTS) ? (r->hostname[0] != 0 ? r->hostname : id) : NULL,
      .new_pid_ns = (flags & CLONE_NEWPID) != 0,
      .no_pivot = g.no_pivot};
  p->pid = kf_spawn(&sp, flags | SIGCHLD);
  if (p->pid < 0) {
    int e = errno;
    close_pipes(&pp);
    free_proc(p);
    release_container(c);
    return fail(resp, KF_AGENT_ERR_INTERNAL, "create %s: clone: %s", id, strerror(e));
  }
  close_child_ends(&pp);
  struct kf_spawn_report rep;
  int got = read_report(pp.fd[3][0], &rep);
  if (got != 1 || rep.stage != KF_SPAWN_READY) {
    if (got == 1)
      reap(p);
    else
      kill_and_reap(p);
    close_pipes(&pp);
    free_proc(p);
    release_container(c);
    if (got != 1)
      return fail(resp, KF_AGENT_ERR_INTERNAL, "create %s: the container's set-up %s", id,
                  got == 0 ? "exited without a word" : "did not answer in 10 s");
    return fail(resp, errno_code(rep.err), "create %s: %.60s: %s", id, rep.what, strerror(rep.err));
  }
  /* Its namespaces, for ExecProcess (opened now: the process may die). */
  char path[64];
  for (int i = 0; i < NS_COUNT; ++i) {
    if ((flags & kNsFlags[i]) == 0) continue;
    snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)p->pid, kNsNames[i]);
    c->ns_fds[i] = open(path, O_RDONLY | O_CLOEXEC);
  }
  if (flags & CLONE_NEWPID) {
    snprintf(path, sizeof path, "/proc/%d/ns/pid", (int)p->pid);
    c->pid_ns_fd = open(path, O_RDONLY | O_CLOEXEC);
  }
  p->status_fd = pp.fd[3][0];
  p->start_fd = pp.fd[4][1];
  pp.fd[3][0] = pp.fd[4][1] = -1;
  if (adopt_pipes(p, &pp) != 0) {
    int e = errno;
    kill_and_reap(p);
    close_pipes(&pp);
    free_proc(p);
    release_container(c);
    return fail(resp, KF_AGENT_ERR_INTERNAL, "create %s: stdio: %s", id, strerror(e));
  }
  resp->u.pid.pid = (uint32_t)p->pid;
  return 0;
}

/* ---- StartContainer, ExecProcess --------------------------------------- */

static int start_container(const struct kf_agent_process_ref* r, struct kf_agent_response* resp) {
  struct container* c = find_container(r->container_id);
  if (c == NULL)
    return fail(resp, KF_AGENT_ERR_NOT_FOUND, "start %s: no such container", r->container_id);
  struct proc* p = c->init;
  if (p->state != P_CREATED)
    return fail(resp, KF_AGENT_ERR_FAILED_PRECONDITION, "start %s: already %s", c->id,
                p->state == P_RUNNING ? "started" : "exited");
  char go = 1;
  ssize_t n;
  do n = write(p->start_fd, &go, 1);
  while (n < 0 && errno == EINTR);
  close_fd(&p->start_fd);
  struct kf_spawn_report rep;
  int got = read_report(p->status_fd, &rep);
  close_fd(&p->status_fd);
  if (got == 0) {
    if (p->state == P_CREATED) p->state = P_RUNNING; /* unless it exited already */
    resp->u.pid.pid = (uint32_t)p->pid;
    return 0;
  }
  if (got < 0) kill_and_reap(p);
  reap(p); /* it exits 127 after its report: WaitProcess tells so */
  if (got < 0)
    return fail(resp, KF_AGENT_ERR_INTERNAL, "start %s: the process did not exec in 10 s", c->id);
  return fail(resp, errno_code(rep.err), "start %s: %.80s: %s", c->id, rep.what, strerror(rep.err));
}

static int exec_process(const struct kf_agent_exec_process_req* r, struct kf_agent_response* resp) {
  struct container* c = find_container(r->container_id);
  if (c == NULL)
    return fail(resp, KF_AGENT_ERR_NOT_FOUND, "exec %s: no such container", r->container_id);
  if (c->init->state != P_RUNNING)
    return fail(resp, KF_AGENT_ERR_FAILED_PRECONDITION, "exec %s: container is not running (%s)",
                c->id, c->init->state == P_CREATED ? "not started" : "exited");
  if (find_proc(c, r->exec_id) != NULL)
    return fail(resp, KF_AGENT_ERR_ALREADY_EXISTS, "exec %s: exec id %s in use", c->id, r->exec_id);
  if (r->process.terminal)
    return fail(resp, KF_AGENT_ERR_UNSUPPORTED, "exec %s: terminal: no pty support", c->id);
  struct proc* p = new_proc(c, r->exec_id);
  if (p == NULL)
    return fail(resp, KF_AGENT_ERR_RESOURCE_EXHAUSTED, "exec %s: at most %d processes", c->id,
                KF_PROCESSES_MAX);
  p->state = P_CREATED;
  struct pipes pp;
  if (open_pipes(&pp, 4) != 0) {
    int e = errno;
    free_proc(p);
    return fail(resp, KF_AGENT_ERR_INTERNAL, "exec %s: pipe2: %s", c->id, strerror(e));
  }
  int ns_fds[NS_COUNT], ns_count = 0;
  for (int i = 0; i < NS_COUNT; ++i) {
    if (c->ns_fds[i] >= 0) ns_fds[ns_count++] = c->ns_fds[i];
  }
  build_argv_envp(&r->process);
  struct kf_spawn sp = {.argv = g_argv,
                        .envp = g_envp,
                        .cwd = r->process.cwd,
                        .uid = r->process.uid,
                        .gid = r->process.gid,
                        .stdin_r = pp.fd[0][0],
                        .stdout_w = pp.fd[1][1],
                        .stderr_w = pp.fd[2][1],
                        .status_w = pp.fd[3][1],
                        .start_r = -1,
                        .ns_fds = ns_fds,
                        .ns_count = ns_count};
  /* The pid namespace is entered by the agent for its next child only. */
  int e = 0;
  if (c->pid_ns_fd >= 0 && setns(c->pid_ns_fd, CLONE_NEWPID) != 0) e = errno;
  if (e == 0) {
    p->pid = kf_spawn(&sp, SIGCHLD);
    if (p->pid < 0) e = errno;
  }
  if (c->pid_ns_fd >= 0 && setns(g.self_pid_ns, CLONE_NEWPID) != 0)
    kf_log("exec %s: setns back to the agent's pid namespace: %s", c->id, strerror(errno));
  if (e != 0) {
    close_pipes(&pp);
    free_proc(p);
    return fail(resp, KF_AGENT_ERR_INTERNAL, "exec %s: %s: %s", c->id,
                e == ENOMEM ? "clone (container exiting?)" : "clone", strerror(e));
  }
  close_child_ends(&pp);
  p->state = P_RUNNING;
  struct kf_spawn_report rep;
  int got = read_report(pp.fd[3][0], &rep);
  if (got != 0) {
    if (got < 0) kill_and_reap(p);
    reap(p);
    close_pipes(&pp);
    free_proc(p);
    if (got < 0)
      return fail(resp, KF_AGENT_ERR_INTERNAL, "exec %s %s: no exec in 10 s", c->id, r->exec_id);
    return fail(resp, errno_code(rep.err), "exec %s %s: %.60s: %s", c->id, r->exec_id, rep.what,
                strerror(rep.err));
  }
  if (adopt_pipes(p, &pp) != 0) {
    e = errno;
    kill_and_reap(p);
    close_pipes(&pp);
    free_proc(p);
    return fail(resp, KF_AGENT_ERR_INTERNAL, "exec %s: stdio: %s", c->id, strerror(e));
  }
  close_pipes(&pp);
  resp->u.pid.pid = (uint32_t)p->pid;
  return 0;
}

/* ---- calls on one process ---------------------------------------------- */

static struct proc* lookup(const struct kf_agent_process_ref* r, const char* what,
                           struct kf_agent_response* resp) {
  struct container* c = find_container(r->container_id);
  if (c == NULL) {
    fail(resp, KF_AGENT_ERR_NOT_FOUND, "%s %s: no such container", what, r->container_id);
    return NULL;
  }
  struct proc* p = find_proc(c, r->exec_id);
  if (p == NULL)
    fail(resp, KF_AGENT_ERR_NOT_FOUND, "%s %s: no process with exec id '%s'", what, c->id,
         r->exec_id);
  return p;
}

static const struct kf_agent_process_ref* ref_of(const struct kf_agent_request* req) {
  return (const struct kf_agent_process_ref*)(const void*)&req->u;
}

/* The remaining wait of a pending call, or 0 when it is over. */
static bool still_waiting(uint32_t wait_ms) {
  if (wait_ms == 0) return false;
  uint64_t deadline = kf_server_request_since_ns() + (uint64_t)wait_ms * 1000000u;
  if (kf_server_now_ns() >= deadline) return false;
  kf_server_wake_at(deadline);
  return true;
}

static int wait_process(const struct kf_agent_wait_process_req* r, struct kf_agent_response* resp) {
  struct proc* p = lookup((const struct kf_agent_process_ref*)(const void*)r, "wait", resp);
  if (p == NULL) return -1;
  struct kf_agent_wait_process_reply* w = &resp->u.wait_process;
  if (p->state != P_EXITED) {
    if (still_waiting(r->timeout_ms)) return KF_CORE_PENDING;
    w->exited = 0;
    w->exit_code = 0;
    w->signal = 0;
    return 0;
  }
  w->exited = 1;
  w->exit_code = WIFEXITED(p->status) ? WEXITSTATUS(p->status) : 0;
  w->signal = WIFSIGNALED(p->status) ? WTERMSIG(p->status) : 0;
  p->exit_reported = true;
  maybe_free_exec(p);
  return 0;
}

static int signal_process(const struct kf_agent_signal_process_req* r,
                          struct kf_agent_response* resp) {
  struct proc* p = lookup((const struct kf_agent_process_ref*)(const void*)r, "signal", resp);
  if (p == NULL) return -1;
  if (p->state == P_EXITED)
    return fail(resp, KF_AGENT_ERR_FAILED_PRECONDITION, "signal %s %s: the process has exited",
                p->c->id, p->exec_id[0] != 0 ? p->exec_id : "(container process)");
  if (kill(p->pid, (int)r->signal) != 0)
    return fail(resp, errno == ESRCH ? KF_AGENT_ERR_FAILED_PRECONDITION : KF_AGENT_ERR_INTERNAL,
                "signal %s: kill %d: %s", p->c->id, (int)p->pid, strerror(errno));
  return 0;
}

static int read_stream(const struct kf_agent_request* req, struct kf_agent_response* resp) {
  const struct kf_agent_read_stream_req* r = &req->u.read_stream;
  bool out = req->kind == KF_AGENT_READ_STDOUT;
  struct proc* p = lookup(ref_of(req), out ? "read stdout" : "read stderr", resp);
  if (p == NULL) return -1;
  struct kf_stream* st = out ? &p->out : &p->err;
  kf_stream_pull(st);
  struct kf_agent_read_stream_reply* rr = &resp->u.read_stream;
  if (st->len == 0 && !kf_stream_drained(st) && still_waiting(r->wait_ms)) return KF_CORE_PENDING;
  uint32_t max = r->max_bytes != 0 ? r->max_bytes : KF_AGENT_STDIO_MAX;
  rr->len = kf_stream_read(st, rr->data, max);
  rr->eof = kf_stream_drained(st);
  maybe_free_exec(p);
  return 0;
}

static int write_stdin(const struct kf_agent_write_stdin_req* r, struct kf_agent_response* resp) {
  struct proc* p = lookup((const struct kf_agent_process_ref*)(const void*)r, "write stdin", resp);
  if (p == NULL) return -1;
  if (p->stdin_fd < 0)
    return fail(resp, KF_AGENT_ERR_FAILED_PRECONDITION, "write stdin %s: stdin is closed",
                p->c->id);
  uint32_t done = 0;
  while (done < r->len) {
    ssize_t n = write(p->stdin_fd, r->data + done, r->len - done);
    if (n > 0) {
      done += (uint32_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break; /* full: the host retries */
    if (done != 0) break;
    return fail(resp, KF_AGENT_ERR_FAILED_PRECONDITION, "write stdin %s: %s", p->c->id,
                n < 0 ? strerror(errno) : "nothing written");
  }
  resp->u.write_stdin.len = done;
  return 0;
}

static int close_stdin(const struct kf_agent_process_ref* r, struct kf_agent_response* resp) {
  struct proc* p = lookup(r, "close stdin", resp);
  if (p == NULL) return -1;
  close_fd(&p->stdin_fd);
  return 0;
}

static int remove_container(const struct kf_agent_process_ref* r, struct kf_agent_response* resp) {
  struct container* c = find_container(r->container_id);
  if (c == NULL)
    return fail(resp, KF_AGENT_ERR_NOT_FOUND, "remove %s: no such container", r->container_id);
  /* Execs first: the container's init cannot finish dying (its pid
   * namespace waits for every pid in it to be reaped) while the agent has
   * unreaped children in there. */
  for (int i = 0; i < KF_PROCESSES_MAX; ++i) {
    struct proc* p = &g.procs[i];
    if (p->state != P_FREE && p->c == c && p != c->init) {
      kill_and_reap(p);
      free_proc(p);
    }
  }
  close_fd(&c->init->start_fd); /* not started: it exits at EOF (and is killed anyway) */
  kill_and_reap(c->init);
  free_proc(c->init);
  release_container(c);
  return 0;
}

int kf_container_call(const struct kf_agent_request* req, struct kf_agent_response* resp) {
  switch (req->kind) {
    case KF_AGENT_CREATE_CONTAINER:
      return create_container(&req->u.create_container, resp);
    case KF_AGENT_START_CONTAINER:
      return start_container(&req->u.start_container, resp);
    case KF_AGENT_EXEC_PROCESS:
      return exec_process(&req->u.exec_process, resp);
    case KF_AGENT_WAIT_PROCESS:
      return wait_process(&req->u.wait_process, resp);
    case KF_AGENT_SIGNAL_PROCESS:
      return signal_process(&req->u.signal_process, resp);
    case KF_AGENT_READ_STDOUT:
    case KF_AGENT_READ_STDERR:
      return read_stream(req, resp);
    case KF_AGENT_WRITE_STDIN:
      return write_stdin(&req->u.write_stdin, resp);
    case KF_AGENT_CLOSE_STDIN:
      return close_stdin(&req->u.close_stdin, resp);
    case KF_AGENT_REMOVE_CONTAINER:
      return remove_container(&req->u.remove_container, resp);
    default:
      return fail(resp, KF_AGENT_ERR_UNKNOWN_REQUEST, "not a container call");
  }
}

void kf_containers_init(const char* default_rootfs, const char* state_dir, bool no_pivot) {
  g.no_pivot = no_pivot;
  snprintf(g.default_rootfs, sizeof g.default_rootfs, "%s", default_rootfs);
  snprintf(g.state_dir, sizeof g.state_dir, "%s", state_dir);
  g.self_pid_ns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
  if (g.self_pid_ns < 0)
    kf_log("containers: open /proc/self/ns/pid: %s (ExecProcess into pid namespaces will fail)",
           strerror(errno));
  kf_server_on_child_exit(on_child_exit);
}

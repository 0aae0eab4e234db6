/* The epoll loop (server.h). Level-triggered: a connection's interest is
 * recomputed after every pass, so nothing is lost between passes. Every fd
 * on the loop is a struct kf_watch (connections, the listening socket, the
 * signalfd, container pipes). */
#define _GNU_SOURCE
#include "agent/linux/server.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/core/core.h"
#include "agent/linux/log.h"

#define IN_CAP (KF_AGENT_FRAME_HEADER_SIZE + KF_CORE_REQUEST_PAYLOAD_MAX)
#define OUT_CAP (4 * KF_CORE_REPLY_FRAME_MAX)

struct conn {
  struct kf_watch w; /* first: epoll's data.ptr */
  struct conn *park_prev, *park_next; /* on s.parked while a request is pending */
  bool parked;
  uint64_t park_since, wake_at; /* first try of the pending request; retry by */
  int fd;
  uint64_t id;             /* for logs: the n-th connection accepted */
  uint32_t events;         /* the epoll interest registered */
  bool eof, closing;       /* peer done writing; we close once `out` is sent */
  size_t in_len;           /* request bytes not yet served */
  size_t out_off, out_len; /* response bytes out[out_off, out_off + out_len) */
  uint8_t in[IN_CAP];
  uint8_t out[OUT_CAP];
};

static struct {
  int epfd;
  int conns;
  uint64_t accepted;
  struct conn* parked; /* list of parked connections */
  bool wake_all;
  uint64_t since, wake_at; /* of the request being served */
  void (*on_child_exit)(int pid, int status);
  int listen_fd, signal_fd;
  struct kf_watch listen_w, signal_w;
} s;

uint64_t kf_server_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t kf_server_request_since_ns(void) { return s.since; }
void kf_server_wake_at(uint64_t ns) { s.wake_at = ns; }
void kf_server_wake(void) { s.wake_all = true; }
void kf_server_on_child_exit(void (*fn)(int pid, int status)) { s.on_child_exit = fn; }

int kf_server_watch(struct kf_watch* w, int fd, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = w};
  if (epoll_ctl(s.epfd, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
  if (errno != ENOENT) return -1;
  return epoll_ctl(s.epfd, EPOLL_CTL_ADD, fd, &ev);
}

void kf_server_unwatch(int fd) { epoll_ctl(s.epfd, EPOLL_CTL_DEL, fd, NULL); }

static void park(struct conn* c) {
  if (c->parked) return;
  c->parked = true;
  c->park_prev = NULL;
  c->park_next = s.parked;
  if (s.parked != NULL) s.parked->park_prev = c;
  s.parked = c;
}

static void unpark(struct conn* c) {
  if (!c->parked) return;
  c->parked = false;
  if (c->park_prev != NULL)
    c->park_prev->park_next = c->park_next;
  else
    s.parked = c->park_next;
  if (c->park_next != NULL) c->park_next->park_prev = c->park_prev;
}

static void conn_close(struct conn* c) {
  unpark(c);
  epoll_ctl(s.epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  explicit_bzero(c->in, sizeof c->in); /* may hold SetIdentity entropy */
  free(c);
  --s.conns;
}

/* Room for one more reply at the end of `out` (moving pending bytes down). */
static bool out_room(struct conn* c) {
  if (c->out_off != 0 && c->out_off + c->out_len + KF_CORE_REPLY_FRAME_MAX > OUT_CAP) {
    memmove(c->out, c->out + c->out_off, c->out_len);
    c->out_off = 0;
  }
  return c->out_off + c->out_len + KF_CORE_REPLY_FRAME_MAX <= OUT_CAP;
}

/* Serves every whole request frame while a reply has room; a pending one
 * parks the connection (it stays first in `in`). */
static void serve_frames(struct conn* c) {
  while (!c->closing && c->in_len >= KF_AGENT_FRAME_HEADER_SIZE && out_room(c)) {
    size_t consumed, n;
    uint8_t* out = c->out + c->out_off + c->out_len;
    s.since = c->parked ? c->park_since : kf_server_now_ns();
    s.wake_at = 0;
    int rc = kf_core_serve_frame(c->in, c->in_len, out, KF_CORE_REPLY_FRAME_MAX, &consumed, &n);
    c->out_len += n;
    if (rc == KF_CORE_FRAME_NEED_MORE) return;
    if (rc == KF_CORE_FRAME_PENDING) {
      if (!c->parked) c->park_since = s.since;
      c->wake_at = s.wake_at != 0 ? s.wake_at : s.since + 1000000000u; /* at worst 1 s */
      park(c);
      return;
    }
    unpark(c);
    if (rc == KF_CORE_FRAME_BAD) {
      struct kf_agent_response r;
      const char* why = "bad frame header";
      if (n > KF_AGENT_FRAME_HEADER_SIZE &&
          kf_agent_decode_response(out + KF_AGENT_FRAME_HEADER_SIZE, n - KF_AGENT_FRAME_HEADER_SIZE,
                                   &r) == KF_PB_OK &&
          r.kind == KF_AGENT_ERROR)
        why = r.u.error.message;
      kf_log("connection %llu: malformed frame (%s): replied BAD_FRAME, closing it",
             (unsigned long long)c->id, why);
      c->closing = true;
      c->in_len = 0;
      return;
    }
    c->in_len -= consumed;
    memmove(c->in, c->in + consumed, c->in_len);
    memset(c->in + c->in_len, 0, consumed); /* no stale copy of SetIdentity entropy */
  }
}

/* Sends what is pending; false if the connection broke. */
static bool flush(struct conn* c) {
  while (c->out_len != 0) {
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0) {
      if (errno != EPIPE && errno != ECONNRESET)
        kf_log("connection %llu: send: %s", (unsigned long long)c->id, strerror(errno));
      return false;
    }
    c->out_off += (size_t)n;
    c->out_len -= (size_t)n;
  }
  c->out_off = 0;
  return true;
}

/* A frame is waiting that serve_frames could take now. */
static bool frame_waiting(const struct conn* c) {
  if (c->in_len < KF_AGENT_FRAME_HEADER_SIZE) return false;
  struct kf_agent_frame_header h;
  if (kf_agent_frame_header_decode(c->in, &h) != KF_PB_OK) return true; /* BAD: served */
  return c->in_len - KF_AGENT_FRAME_HEADER_SIZE >= h.length;
}

/* Reads, serves and sends as far as the socket allows, then sets the epoll
 * interest (or closes). */
static void conn_pump(struct conn* c) {
  for (;;) {
    serve_frames(c);
    if (!flush(c)) {
      conn_close(c);
      return;
    }
    if (c->closing || c->out_len != 0) break; /* the rest once the peer reads */
    if (c->parked) break;                     /* nothing read behind a pending request */
    if (frame_waiting(c)) continue;           /* served up to out's room: more */
    if (c->eof) break;
    ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, MSG_DONTWAIT);
    if (n > 0) {
      c->in_len += (size_t)n;
    } else if (n == 0) {
      c->eof = true;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else if (errno != EINTR) {
      if (errno != ECONNRESET)
        kf_log("connection %llu: recv: %s", (unsigned long long)c->id, strerror(errno));
      conn_close(c);
      return;
    }
  }
  /* A peer done writing still gets the answer to a parked request. */
  if ((c->closing || (c->eof && !c->parked)) && c->out_len == 0) {
    if (c->eof && c->in_len != 0)
      kf_log("connection %llu: closed by the peer inside a frame (%zu bytes dropped)",
             (unsigned long long)c->id, c->in_len);
    conn_close(c);
    return;
  }
  uint32_t want = c->out_len != 0 ? EPOLLOUT : c->parked ? 0 : EPOLLIN;
  if (want != c->events) {
    struct epoll_event ev = {.events = want, .data.ptr = &c->w};
    if (epoll_ctl(s.epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
      kf_log("connection %llu: epoll_ctl: %s", (unsigned long long)c->id, strerror(errno));
      conn_close(c);
      return;
    }
    c->events = want;
  }
}

static void conn_ready(struct kf_watch* w, uint32_t events) {
  struct conn* c = (struct conn*)w;
  /* Parked with no interest, a hang-up still reports: the peer is gone. */
  if (c->parked && (events & (EPOLLHUP | EPOLLERR)) != 0 && c->out_len == 0) {
    conn_close(c);
    return;
  }
  conn_pump(c);
}

static void accept_all(int listen_fd) {
  for (;;) {
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) kf_log("accept: %s", strerror(errno));
      return;
    }
    ++s.accepted;
    struct conn* c = s.conns < KF_LINUX_MAX_CONNS ? malloc(sizeof *c) : NULL;
    if (c == NULL) {
      kf_log("connection %llu: refused: %d connections open (at most %d)",
             (unsigned long long)s.accepted, s.conns, KF_LINUX_MAX_CONNS);
      close(fd);
      continue;
    }
    memset(c, 0, offsetof(struct conn, in));
    c->w.ready = conn_ready;
    c->fd = fd;
    c->id = s.accepted;
    c->out_len = kf_core_ready_frame(c->out, OUT_CAP);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->w};
    if (epoll_ctl(s.epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      kf_log("connection %llu: epoll_ctl: %s", (unsigned long long)c->id, strerror(errno));
      close(fd);
      free(c);
      continue;
    }
    c->events = EPOLLIN;
    ++s.conns;
    conn_pump(c);
  }
}

static void reap_children(int sfd) {
  struct signalfd_siginfo si;
  while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
  }
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    if (s.on_child_exit != NULL) s.on_child_exit(pid, status);
  }
}

static void listen_ready(struct kf_watch* w, uint32_t events) {
  (void)w;
  (void)events;
  accept_all(s.listen_fd);
}

static void signal_ready(struct kf_watch* w, uint32_t events) {
  (void)w;
  (void)events;
  reap_children(s.signal_fd);
}

/* Serves the parked connections again: all of them after a wake, else those
 * whose time came. Returns the epoll_wait timeout until the next one (ms,
 * -1 for none). */
static int serve_parked(void) {
  struct conn* due[KF_LINUX_MAX_CONNS];
  int n = 0;
  uint64_t now = kf_server_now_ns();
  for (struct conn* c = s.parked; c != NULL && n < KF_LINUX_MAX_CONNS; c = c->park_next) {
    if (s.wake_all || c->wake_at <= now) due[n++] = c;
  }
  s.wake_all = false;
  for (int i = 0; i < n; ++i) conn_pump(due[i]); /* each may unpark or close only itself */
  uint64_t next = 0;
  for (struct conn* c = s.parked; c != NULL; c = c->park_next) {
    if (next == 0 || c->wake_at < next) next = c->wake_at;
  }
  if (next == 0) return -1;
  now = kf_server_now_ns();
  return next <= now ? 0 : (int)((next - now + 999999u) / 1000000u);
}

void kf_server_run(int listen_fd, const char** why) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) {
    *why = "sigprocmask";
    return;
  }
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  s.epfd = epoll_create1(EPOLL_CLOEXEC);
  if (sfd < 0 || s.epfd < 0) {
    *why = sfd < 0 ? "signalfd" : "epoll_create1";
    return;
  }
  s.listen_fd = listen_fd;
  s.signal_fd = sfd;
  s.listen_w.ready = listen_ready;
  s.signal_w.ready = signal_ready;
  if (kf_server_watch(&s.listen_w, listen_fd, EPOLLIN) != 0 ||
      kf_server_watch(&s.signal_w, sfd, EPOLLIN) != 0) {
    *why = "epoll_ctl (listening socket)";
    return;
  }
  reap_children(sfd); /* orphans that died before the loop began */
  struct epoll_event events[64];
  int timeout = -1;
  for (;;) {
    int n = epoll_wait(s.epfd, events, 64, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      *why = "epoll_wait";
      return;
    }
    for (int i = 0; i < n; ++i) {
      struct kf_watch* w = events[i].data.ptr;
      w->ready(w, events[i].events);
    }
    timeout = s.parked != NULL || s.wake_all ? serve_parked() : -1;
  }
}

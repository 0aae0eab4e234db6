/* The epoll loop (server.h). Level-triggered: a connection's interest is
 * recomputed after every pass, so nothing is lost between passes. */
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
#include <unistd.h>

#include "agent/core/core.h"
#include "agent/linux/log.h"

#define IN_CAP (KF_AGENT_FRAME_HEADER_SIZE + KF_CORE_REQUEST_PAYLOAD_MAX)
#define OUT_CAP (4 * KF_CORE_REPLY_FRAME_MAX)

struct conn {
  int fd;
  uint64_t id;             /* for logs: the n-th connection accepted */
  uint32_t events;         /* the epoll interest registered */
  bool eof, closing;       /* peer done writing; we close once `out` is sent */
  size_t in_len;           /* request bytes not yet served */
  size_t out_off, out_len; /* response bytes out[out_off, out_off + out_len) */
  uint8_t in[IN_CAP];
  uint8_t out[OUT_CAP];
};

/* epoll's data.ptr for the two non-connection fds. */
static char g_listen_tag, g_signal_tag;

static struct {
  int epfd;
  int conns;
  uint64_t accepted;
} s;

static void conn_close(struct conn* c) {
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

/* Serves every whole request frame while a reply has room. */
static void serve_frames(struct conn* c) {
  while (!c->closing && c->in_len >= KF_AGENT_FRAME_HEADER_SIZE && out_room(c)) {
    size_t consumed, n;
    uint8_t* out = c->out + c->out_off + c->out_len;
    int rc = kf_core_serve_frame(c->in, c->in_len, out, KF_CORE_REPLY_FRAME_MAX, &consumed, &n);
    c->out_len += n;
    if (rc == KF_CORE_FRAME_NEED_MORE) return;
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
  if ((c->closing || c->eof) && c->out_len == 0) {
    if (c->eof && c->in_len != 0)
      kf_log("connection %llu: closed by the peer inside a frame (%zu bytes dropped)",
             (unsigned long long)c->id, c->in_len);
    conn_close(c);
    return;
  }
  uint32_t want = c->out_len != 0 ? EPOLLOUT : EPOLLIN;
  if (want != c->events) {
    struct epoll_event ev = {.events = want, .data.ptr = c};
    if (epoll_ctl(s.epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
      kf_log("connection %llu: epoll_ctl: %s", (unsigned long long)c->id, strerror(errno));
      conn_close(c);
      return;
    }
    c->events = want;
  }
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
    c->fd = fd;
    c->id = s.accepted;
    c->out_len = kf_core_ready_frame(c->out, OUT_CAP);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
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
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
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
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &g_listen_tag};
  struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &g_signal_tag};
  if (epoll_ctl(s.epfd, EPOLL_CTL_ADD, listen_fd, &ev) != 0 ||
      epoll_ctl(s.epfd, EPOLL_CTL_ADD, sfd, &sev) != 0) {
    *why = "epoll_ctl (listening socket)";
    return;
  }
  reap_children(sfd); /* orphans that died before the loop began */
  struct epoll_event events[64];
  for (;;) {
    int n = epoll_wait(s.epfd, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      *why = "epoll_wait";
      return;
    }
    for (int i = 0; i < n; ++i) {
      void* p = events[i].data.ptr;
      if (p == &g_listen_tag)
        accept_all(listen_fd);
      else if (p == &g_signal_tag)
        reap_children(sfd);
      else
        conn_pump(p);
    }
  }
}

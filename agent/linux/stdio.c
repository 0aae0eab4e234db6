/* Output streams of container processes (stdio.h). */
#define _GNU_SOURCE
#include "agent/linux/stdio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "agent/linux/log.h"

static void set_watched(struct kf_stream* st, bool on) {
  if (st->fd < 0 || st->watched == on) return;
  /* Off = removed, not interest 0: a hung-up pipe would report EPOLLHUP
   * with no interest at all, again and again. */
  if (on) {
    if (kf_server_watch(&st->w, st->fd, EPOLLIN) != 0) {
      kf_log("stdio: epoll_ctl: %s", strerror(errno));
      return;
    }
  } else {
    kf_server_unwatch(st->fd);
  }
  st->watched = on;
}

static void mark_eof(struct kf_stream* st) {
  set_watched(st, false);
  close(st->fd);
  st->fd = -1;
  st->eof = true;
}

/* The pipe is readable (or hung up): into the ring as far as it goes. */
static void stream_ready(struct kf_watch* w, uint32_t events) {
  (void)events;
  struct kf_stream* st = (struct kf_stream*)w;
  if (st->fd < 0 || st->buf == NULL) return; /* closed since the event was queued */
  bool changed = false;
  while (st->len < KF_STDIO_RING) {
    uint32_t tail = (st->head + st->len) % KF_STDIO_RING;
    uint32_t room = tail >= st->head ? KF_STDIO_RING - tail : st->head - tail;
    if (room > KF_STDIO_RING - st->len) room = KF_STDIO_RING - st->len;
    ssize_t n = read(st->fd, st->buf + tail, room);
    if (n > 0) {
      st->len += (uint32_t)n;
      changed = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0) kf_log("stdio: read: %s (treated as end of stream)", strerror(errno));
    mark_eof(st);
    changed = true;
    break;
  }
  if (st->fd >= 0 && st->len == KF_STDIO_RING) set_watched(st, false); /* full: the writer waits */
  if (changed) kf_server_wake();
}

void kf_stream_pull(struct kf_stream* st) { stream_ready(&st->w, 0); }

int kf_stream_open(struct kf_stream* st, int fd) {
  memset(st, 0, sizeof *st);
  st->w.ready = stream_ready;
  st->fd = fd;
  st->buf = malloc(KF_STDIO_RING);
  if (st->buf == NULL || fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
    int e = st->buf == NULL ? ENOMEM : errno;
    kf_stream_close(st);
    errno = e;
    return -1;
  }
  set_watched(st, true);
  if (!st->watched) {
    int e = errno;
    kf_stream_close(st);
    errno = e;
    return -1;
  }
  return 0;
}

uint32_t kf_stream_read(struct kf_stream* st, uint8_t* out, uint32_t max) {
  uint32_t done = 0;
  while (done < max && st->len > 0) {
    uint32_t chunk = KF_STDIO_RING - st->head;
    if (chunk > st->len) chunk = st->len;
    if (chunk > max - done) chunk = max - done;
    memcpy(out + done, st->buf + st->head, chunk);
    st->head = (st->head + chunk) % KF_STDIO_RING;
    st->len -= chunk;
    done += chunk;
  }
  if (st->len == 0) st->head = 0;
  if (done != 0 && st->fd >= 0 && !st->watched) set_watched(st, true);
  return done;
}

bool kf_stream_drained(const struct kf_stream* st) { return st->len == 0 && st->fd < 0; }

void kf_stream_close(struct kf_stream* st) {
  if (st->fd >= 0) {
    set_watched(st, false);
    close(st->fd);
  }
  st->fd = -1;
  st->watched = false;
  free(st->buf);
  st->buf = NULL;
  st->head = st->len = 0;
}

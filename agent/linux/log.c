#include "agent/linux/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

bool kf_is_pid1 = false;

static void vlog(const char* prefix, const char* fmt, va_list ap) {
  char line[512];
  int n = snprintf(line, sizeof line, "kf-agent: %s", prefix);
  if (n < 0) return;
  int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  size_t len = m < 0 ? (size_t)n : (size_t)n + (size_t)m;
  if (len > sizeof line - 2) len = sizeof line - 2; /* truncated: keep the newline */
  line[len++] = '\n';
  int saved = errno;
  ssize_t w;
  do w = write(STDERR_FILENO, line, len);
  while (w < 0 && errno == EINTR);
  errno = saved;
}

void kf_log(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog("", fmt, ap);
  va_end(ap);
}

void kf_fatal(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog("fatal: ", fmt, ap);
  va_end(ap);
  if (!kf_is_pid1) exit(1);
  kf_log("PID 1 cannot exit (the kernel would panic): sleeping forever");
  for (;;) {
    /* Blocks while there are children to reap; sleeps when there are none. */
    if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD) sleep(3600);
  }
}

/*
 * A container process's output stream: the read end of its stdout or stderr
 * pipe, watched by the server loop, and a bounded ring the host reads from
 * (ReadStdout/ReadStderr). When the ring is full the pipe is no longer
 * read, so the process blocks in write(2) once the pipe (64 KiB) fills too:
 * a process never outruns the agent's memory.
 */
#ifndef KF_AGENT_LINUX_STDIO_H_
#define KF_AGENT_LINUX_STDIO_H_

#include <stdbool.h>
#include <stdint.h>

#include "agent/linux/server.h"

#define KF_STDIO_RING (32u * 1024u) /* bytes buffered per stream */

struct kf_stream {
  struct kf_watch w; /* first: the server loop's handle */
  int fd;            /* the pipe's read end; -1 once closed */
  bool eof;          /* the writers are gone (read returned 0) */
  bool watched;      /* on the loop (not while the ring is full) */
  uint8_t* buf;      /* KF_STDIO_RING bytes */
  uint32_t head, len;
};

/* Takes fd (made non-blocking), allocates the ring and watches the pipe.
 * 0, or -1 with errno (fd closed). */
int kf_stream_open(struct kf_stream* st, int fd);
/* Reads what the pipe holds now into the ring (as the loop would). */
void kf_stream_pull(struct kf_stream* st);
/* Up to max buffered bytes into out; resumes reading a full pipe. */
uint32_t kf_stream_read(struct kf_stream* st, uint8_t* out, uint32_t max);
/* Nothing buffered and the writers gone: the host has seen it all. */
bool kf_stream_drained(const struct kf_stream* st);
/* Stops watching, closes the pipe, frees the ring; a closed stream reads as
 * drained. Safe on a stream never opened (fd -1, buf NULL). */
void kf_stream_close(struct kf_stream* st);

#endif /* KF_AGENT_LINUX_STDIO_H_ */

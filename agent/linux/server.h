/*
 * The Linux agent's connections: one epoll loop serving every connection of
 * a listening stream socket (vsock port 1024 in the guest, a Unix socket in
 * tests) through the protocol core. Each accepted connection gets the Ready
 * frame first, then one response frame per request frame, in order. A bad
 * frame header gets its BAD_FRAME reply, a log line, and closes that
 * connection only. The loop also reaps children (SIGCHLD through a
 * signalfd): as PID 1 the agent inherits every orphan.
 *
 * Containers hook in here: their pipes are watched by the same loop
 * (kf_server_watch), exits of children are passed on (kf_server_on_child_exit),
 * and a request the core answers "pending" (a WaitProcess or ReadStdout with
 * a wait) parks its connection: the frame stays unconsumed, later frames of
 * that connection wait behind it, and it is served again after any
 * kf_server_wake() or at the time kf_server_wake_at() named, whichever
 * comes first. Other connections are served meanwhile.
 */
#ifndef KF_AGENT_LINUX_SERVER_H_
#define KF_AGENT_LINUX_SERVER_H_

/* Connections served at once; one more is accepted, logged and closed. */
#define KF_LINUX_MAX_CONNS 256

/* Serves `listen_fd` (listening, any stream family) forever. Returns only
 * when the loop cannot go on (epoll or signalfd failed), with a message in
 * *why. */
void kf_server_run(int listen_fd, const char** why);

#include <stdint.h>

/* Something on the loop: `ready` runs with the epoll events of its fd. */
struct kf_watch {
  void (*ready)(struct kf_watch* w, uint32_t events);
};
/* Watches fd for `events` (EPOLLIN, ...; 0 = registered but quiet), or
 * changes the interest of an fd already watched. 0 or -1 with errno. */
int kf_server_watch(struct kf_watch* w, int fd, uint32_t events);
/* Stops watching fd (before closing it). */
void kf_server_unwatch(int fd);
/* Called with each child the loop reaps (waitpid status). */
void kf_server_on_child_exit(void (*fn)(int pid, int status));

/* CLOCK_MONOTONIC, ns. */
uint64_t kf_server_now_ns(void);
/* While a request is served: when it was first tried (it may have been
 * parked since), so a wait can end at since + wait. */
uint64_t kf_server_request_since_ns(void);
/* From an operation answering "pending": serve it again by this time. */
void kf_server_wake_at(uint64_t ns);
/* Something a parked request may wait on happened: serve them again. */
void kf_server_wake(void);

#endif /* KF_AGENT_LINUX_SERVER_H_ */

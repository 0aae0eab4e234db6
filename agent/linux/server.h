/*
 * The Linux agent's connections: one epoll loop serving every connection of
 * a listening stream socket (vsock port 1024 in the guest, a Unix socket in
 * tests) through the protocol core. Each accepted connection gets the Ready
 * frame first, then one response frame per request frame, in order. A bad
 * frame header gets its BAD_FRAME reply, a log line, and closes that
 * connection only. The loop also reaps children (SIGCHLD through a
 * signalfd): as PID 1 the agent inherits every orphan.
 */
#ifndef KF_AGENT_LINUX_SERVER_H_
#define KF_AGENT_LINUX_SERVER_H_

/* Connections served at once; one more is accepted, logged and closed. */
#define KF_LINUX_MAX_CONNS 256

/* Serves `listen_fd` (listening, any stream family) forever. Returns only
 * when the loop cannot go on (epoll or signalfd failed), with a message in
 * *why. */
void kf_server_run(int listen_fd, const char** why);

#endif /* KF_AGENT_LINUX_SERVER_H_ */

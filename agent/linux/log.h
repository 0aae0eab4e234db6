/*
 * The Linux agent's log: one line per event on stderr, which is the console
 * (/dev/console, the serial port) when the agent is PID 1. Each line is
 * "kf-agent: <message>\n", written with one write(2) so lines never mix.
 */
#ifndef KF_AGENT_LINUX_LOG_H_
#define KF_AGENT_LINUX_LOG_H_

#include <stdbool.h>

void kf_log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/* Whether the process is the guest's PID 1 (set once by main). */
extern bool kf_is_pid1;

/* Logs "fatal: <message>" and never returns: as PID 1 (whose exit would
 * panic the kernel) it reaps children and sleeps forever; otherwise it
 * exits with status 1. */
__attribute__((noreturn)) void kf_fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* KF_AGENT_LINUX_LOG_H_ */

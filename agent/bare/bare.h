/*
 * What every file of the bare guest shares: port I/O, barriers, panic and
 * the freestanding memory helpers. The guest runs at CPL3 with IOPL=3 and no
 * interrupts, so `in`/`out` exit to the VMM and nothing preempts the code.
 */
#ifndef KF_AGENT_BARE_BARE_H_
#define KF_AGENT_BARE_BARE_H_

#include <stddef.h>
#include <stdint.h>

#include "agent/bare/bare_abi.h"

#ifdef KF_BARE_HOSTED
/* A simulation build (a host program plays VMM and device): port and MMIO
 * accesses become calls. Never defined in the guest image. */
void kf_hosted_outl(uint16_t port, uint32_t value);
uint32_t kf_hosted_inl(uint16_t port);
uint64_t kf_hosted_mmio_read(uint64_t gpa, unsigned width);
void kf_hosted_mmio_write(uint64_t gpa, unsigned width, uint64_t value);
static inline void kf_outl(uint16_t port, uint32_t value) { kf_hosted_outl(port, value); }
static inline uint32_t kf_inl(uint16_t port) { return kf_hosted_inl(port); }
#else
static inline void kf_outl(uint16_t port, uint32_t value) {
  __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port) : "memory");
}

static inline uint32_t kf_inl(uint16_t port) {
  uint32_t value;
  __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port) : "memory");
  return value;
}
#endif

/* The compiler neither caches memory across it nor moves accesses past it. */
static inline void kf_barrier(void) { __asm__ volatile("" : : : "memory"); }

/* A full fence: ring writes are globally visible before what follows (the
 * device runs on another host thread only between exits, but a fence before
 * a notify costs nothing next to the exit itself). */
static inline void kf_mb(void) { __asm__ volatile("mfence" : : : "memory"); }

/* The boot info page; set by kf_main before anything else runs. */
extern volatile struct kf_boot_info* kf_boot;

/* Records code/detail in the boot info and signals KF_SIGNAL_PANIC forever. */
__attribute__((noreturn)) void kf_panic(uint32_t code, uint64_t detail);

/* The compiler may emit calls to these even in freestanding code. */
void* memcpy(void* dst, const void* src, size_t n);
void* memmove(void* dst, const void* src, size_t n);
void* memset(void* dst, int c, size_t n);
int memcmp(const void* a, const void* b, size_t n);

static inline uint32_t kf_min32(uint32_t a, uint32_t b) { return a < b ? a : b; }

#endif /* KF_AGENT_BARE_BARE_H_ */

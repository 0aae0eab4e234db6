/*
 * memcpy and friends for the freestanding guest, as string instructions:
 * written as C loops, GCC may turn them back into calls to themselves.
 * Also the panic path, shared by every file.
 */
#include "agent/bare/bare.h"

volatile struct kf_boot_info* kf_boot = (volatile struct kf_boot_info*)KF_BARE_BOOT_GPA;

#ifndef KF_BARE_HOSTED /* a simulation build uses the host's libc */
void* memcpy(void* dst, const void* src, size_t n) {
  void* d = dst;
  __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
  return dst;
}

void* memmove(void* dst, const void* src, size_t n) {
  if ((uintptr_t)dst <= (uintptr_t)src || (uintptr_t)dst >= (uintptr_t)src + n)
    return memcpy(dst, src, n);
  /* Overlapping with dst above src: copy backwards from the last byte. */
  uint8_t* d = (uint8_t*)dst + n - 1;
  const uint8_t* s = (const uint8_t*)src + n - 1;
  __asm__ volatile("std\n\trep movsb\n\tcld" : "+D"(d), "+S"(s), "+c"(n) : : "memory", "cc");
  return dst;
}

void* memset(void* dst, int c, size_t n) {
  void* d = dst;
  __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
  return dst;
}

int memcmp(const void* a, const void* b, size_t n) {
  const volatile uint8_t* x = (const volatile uint8_t*)a;
  const volatile uint8_t* y = (const volatile uint8_t*)b;
  for (size_t i = 0; i < n; ++i)
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  return 0;
}
#endif

void kf_panic(uint32_t code, uint64_t detail) {
  kf_boot->panic_detail = detail;
  kf_boot->panic_code = code;
  for (;;) kf_outl(KF_PORT_SIGNAL, KF_SIGNAL_PANIC);
}

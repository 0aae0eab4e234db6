/*
 * The bare agent: a freestanding guest that runs at CPL3 with no kernel.
 *
 * Boot: check the boot info, seed the RNG, initialise boot.init_size bytes at
 * boot.init_gpa with a known pattern (the stand-in for the expensive start-up
 * a template saves), bring up the vsock device, signal READY, then serve the
 * agent protocol (proto/agent.proto) on vsock port 1024 forever. Idle =
 * blocked in the VMM on an `in` from KF_PORT_WAIT: no spinning, so an idle
 * clone uses no CPU.
 *
 * This file runs the protocol core (agent/core/core.h: framing, dispatch)
 * over each connection; serve.c is the bare platform's side of the requests;
 * vsock.c carries the bytes.
 */
#include "agent/bare/bare.h"
#include "agent/bare/hostile.h"
#include "agent/bare/rng.h"
#include "agent/bare/serve.h"
#include "agent/bare/vsock.h"
#include "agent/core/core.h"

_Static_assert(KF_AGENT_FRAME_HEADER_SIZE + KF_CORE_REQUEST_PAYLOAD_MAX <= KF_CONN_IN_SIZE,
               "a whole request frame fits a connection's input buffer");
_Static_assert(KF_CORE_REPLY_FRAME_MAX <= KF_CONN_OUT_SIZE, "a reply fits the output buffer");

static void on_open(struct kf_conn* c) {
  uint8_t* p = kf_conn_reserve(c, KF_CORE_REPLY_FRAME_MAX);
  if (p == 0) return;
  size_t n = kf_core_ready_frame(p, KF_CORE_REPLY_FRAME_MAX);
  if (n != 0) kf_conn_commit(c, (uint32_t)n);
}

/* Serves every complete request frame while a reply has room. A bad header
 * gets an ErrorReply BAD_FRAME, then the connection closes (core.h). */
static void on_input(struct kf_conn* c) {
  for (;;) {
    uint32_t avail;
    const uint8_t* in = kf_conn_input(c, &avail);
    if (avail < KF_AGENT_FRAME_HEADER_SIZE) return;
    uint8_t* out = kf_conn_reserve(c, KF_CORE_REPLY_FRAME_MAX);
    if (out == 0) return; /* until the peer reads */
    size_t consumed, n;
    int rc = kf_core_serve_frame(in, avail, out, KF_CORE_REPLY_FRAME_MAX, &consumed, &n);
    if (n != 0) kf_conn_commit(c, (uint32_t)n);
    if (rc == KF_CORE_FRAME_BAD) {
      kf_conn_close(c);
      return;
    }
    /* PENDING needs a container op, which this platform has not: never. */
    if (rc == KF_CORE_FRAME_NEED_MORE || rc == KF_CORE_FRAME_PENDING) return;
    kf_conn_consume(c, (uint32_t)consumed);
  }
}

static const struct kf_vsock_ops g_agent_ops = {on_open, on_input};

static void boot_init_memory(uint64_t gpa, uint64_t size) {
  volatile uint64_t* p = (volatile uint64_t*)(uintptr_t)gpa;
  for (uint64_t i = 0; i < size / 8; ++i) p[i] = kf_init_pattern(gpa + i * 8);
}

void kf_main(volatile struct kf_boot_info* boot) {
  kf_boot = boot;
  if (boot->magic != KF_BARE_MAGIC || boot->abi_version != KF_BARE_ABI_VERSION)
    kf_panic(KF_PANIC_BAD_BOOT_INFO, boot->abi_version);
  uint64_t mem = boot->mem_size, flags = boot->flags;
  if (mem < KF_BARE_MIN_MEM || mem > KF_BARE_MAX_MEM) kf_panic(KF_PANIC_BAD_BOOT_INFO, mem);
  if ((flags & ~KF_BOOT_FLAGS_KNOWN) != 0) kf_panic(KF_PANIC_BAD_BOOT_INFO, flags);
  uint64_t seed = boot->seed;
  kf_rng_mix(kf_splitmix64(&seed));

  uint64_t init_gpa = boot->init_gpa, init_size = boot->init_size & ~7ull;
  if (init_gpa < KF_BARE_INIT_GPA || init_size > mem || init_gpa > mem - init_size)
    kf_panic(KF_PANIC_INIT_RANGE, boot->init_size);
  boot_init_memory(init_gpa, init_size);
  uint64_t hash = kf_hash_words(KF_HASH_SEED, (const uint64_t*)(uintptr_t)init_gpa, init_size / 8);
  boot->init_bytes = init_size;
  boot->init_hash = hash;
  kf_serve_init(mem, init_size, hash);

  if (boot->vsock_mmio_gpa != KF_BARE_VSOCK_MMIO_GPA)
    kf_panic(KF_PANIC_MMIO_GPA, boot->vsock_mmio_gpa);
  kf_vsock_init(KF_BARE_VSOCK_MMIO_GPA, KF_AGENT_VSOCK_PORT, &g_agent_ops);
  kf_outl(KF_PORT_SIGNAL, KF_SIGNAL_READY);

  if ((flags & KF_BOOT_FLAG_HOSTILE) != 0) kf_hostile_run(boot->seed, mem);
  for (;;) kf_vsock_poll(kf_inl(KF_PORT_WAIT)); /* 0 = spurious wake: poll anyway, it is cheap */
}

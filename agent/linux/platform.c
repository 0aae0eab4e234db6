/* The Linux platform's operations (platform.h). */
#define _GNU_SOURCE /* statx */
#include "agent/linux/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "agent/bare/bare_abi.h" /* kf_hash_words, kf_init_pattern: the protocol's hash */
#include "agent/core/core.h"
#include "agent/linux/container.h"

static struct {
  struct kf_linux_config config;
  uint8_t* buffer;
  uint64_t init_hash;
  uint64_t boot_ns;
} g;

static uint64_t mem_total(void) {
  struct sysinfo si;
  if (sysinfo(&si) != 0) return 0;
  return (uint64_t)si.totalram * (si.mem_unit ? si.mem_unit : 1);
}

static void ready(struct kf_agent_ready* r) {
  r->mem_total = mem_total();
  r->init_bytes = g.config.init_bytes;
  r->init_hash = g.init_hash;
  r->boot_ns = g.boot_ns;
}

static void memory(uint64_t* total, uint64_t* initialised) {
  *total = mem_total();
  *initialised = g.config.init_bytes;
}

/* Appends "step: strerror(errno)" to the error message being built. */
static void add_failure(char* msg, size_t cap, const char* step, int err) {
  size_t n = strlen(msg);
  snprintf(msg + n, cap - n, "%s%s: %s", n > strlen("set_identity: ") ? "; " : "", step,
           strerror(err));
}

/* The kernel RNG: credit the host's entropy, then force the CRNG to reseed
 * from it. Without privilege the bytes are still mixed in (write(2) needs
 * none), but getrandom() output would not change at once: an error. */
static void reseed_rng(const struct kf_agent_set_identity_req* r, char* msg, size_t cap) {
  int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    add_failure(msg, cap, "open /dev/urandom", errno);
    return;
  }
  struct {
    struct rand_pool_info info;
    uint8_t bytes[KF_AGENT_ENTROPY_MAX];
  } pool;
  pool.info.entropy_count = (int)(r->entropy_len * 8);
  pool.info.buf_size = (int)r->entropy_len;
  memcpy(pool.bytes, r->entropy, r->entropy_len);
  if (ioctl(fd, RNDADDENTROPY, &pool) != 0) {
    add_failure(msg, cap, "RNDADDENTROPY", errno);
    if (write(fd, r->entropy, r->entropy_len) < 0)
      add_failure(msg, cap, "write /dev/urandom", errno);
  } else if (ioctl(fd, RNDRESEEDCRNG) != 0) {
    add_failure(msg, cap, "RNDRESEEDCRNG", errno);
  }
  explicit_bzero(&pool, sizeof pool);
  close(fd);
}

static int set_identity(const struct kf_agent_set_identity_req* r, struct kf_agent_error* err) {
  char msg[KF_AGENT_ERROR_MAX * 2] = "set_identity: ";
  size_t clean = strlen(msg);
  reseed_rng(r, msg, sizeof msg);
  if (g.config.set_clock && r->wall_clock_unix_ns != 0) {
    struct timespec ts = {(time_t)(r->wall_clock_unix_ns / 1000000000u),
                          (long)(r->wall_clock_unix_ns % 1000000000u)};
    if (clock_settime(CLOCK_REALTIME, &ts) != 0)
      add_failure(msg, sizeof msg, "clock_settime", errno);
  }
  if (g.config.set_hostname && r->hostname[0] != 0 &&
      sethostname(r->hostname, strlen(r->hostname)) != 0)
    add_failure(msg, sizeof msg, "sethostname", errno);
  if (strlen(msg) == clean) return 0;
  kf_core_set_error(err, KF_AGENT_ERR_INTERNAL, msg);
  return -1;
}

static int dirty_pages(const struct kf_agent_dirty_pages_req* r,
                       struct kf_agent_dirty_pages_reply* reply, struct kf_agent_error* err) {
  uint64_t size = g.config.buffer_bytes, off = r->gpa, pages = r->pages;
  if ((off & 0xfff) != 0 || pages > (size >> 12) || off > size - (pages << 12)) {
    kf_core_set_error(err, KF_AGENT_ERR_BAD_RANGE,
                      "dirty_pages: range outside the agent's buffer (gpa = offset in it)");
    return -1;
  }
  kf_core_dirty_pages((uint8_t*)g.buffer + off, pages, r->value);
  reply->pages = pages;
  return 0;
}

static int hash_range(const struct kf_agent_hash_range_req* r,
                      struct kf_agent_hash_range_reply* reply, struct kf_agent_error* err) {
  if ((r->gpa & 7) != 0 || (r->bytes & 7) != 0) {
    kf_core_set_error(err, KF_AGENT_ERR_BAD_ARGUMENT,
                      "hash_range: gpa and bytes must be multiples of 8");
    return -1;
  }
  uint64_t size = g.config.buffer_bytes;
  if (r->bytes > size || r->gpa > size - r->bytes) {
    kf_core_set_error(err, KF_AGENT_ERR_BAD_RANGE,
                      "hash_range: range outside the agent's buffer (gpa = offset in it)");
    return -1;
  }
  reply->hash = kf_hash_words(KF_HASH_SEED, (const uint64_t*)(g.buffer + r->gpa), r->bytes / 8);
  return 0;
}

static int random_bytes(uint8_t* out, uint32_t bytes, struct kf_agent_error* err) {
  uint32_t done = 0;
  while (done < bytes) {
    ssize_t n = getrandom(out + done, bytes - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      char msg[KF_AGENT_ERROR_MAX];
      snprintf(msg, sizeof msg, "random: getrandom: %s", n < 0 ? strerror(errno) : "no bytes");
      kf_core_set_error(err, KF_AGENT_ERR_INTERNAL, msg);
      return -1;
    }
    done += (uint32_t)n;
  }
  return 0;
}

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000 /* Linux 5.8 */
#endif

/* Past this, a file whose size stat does not give (a /proc file, a device)
 * is not read further: its size is reported as what was read. */
#define READ_FILE_SCAN_MAX (1u << 20)

static int read_file_error(struct kf_agent_error* err, const char* what, const char* path) {
  char msg[KF_AGENT_ERROR_MAX];
  snprintf(msg, sizeof msg, "read_file: %s %s: %s", what, path, strerror(errno));
  kf_core_set_error(err, errno == ENOENT ? KF_AGENT_ERR_BAD_ARGUMENT : KF_AGENT_ERR_INTERNAL, msg);
  return -1;
}

static int read_file(const struct kf_agent_read_file_req* r, struct kf_agent_read_file_reply* reply,
                     struct kf_agent_error* err) {
  int fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return read_file_error(err, "open", r->path);
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, &stx) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return read_file_error(err, "statx", r->path);
  }
  /* /proc and /sys files are regular but report size 0: read those. */
  const bool regular = S_ISREG(stx.stx_mode) && stx.stx_size > 0;
  const uint64_t want = regular ? r->max_bytes : READ_FILE_SCAN_MAX;
  uint8_t scratch[512];
  uint64_t total = 0;
  while (total < want) {
    uint8_t* dst = total < r->max_bytes ? reply->data + total : scratch;
    uint64_t room = total < r->max_bytes ? r->max_bytes - total : sizeof scratch;
    if (room > want - total) room = want - total;
    ssize_t n = read(fd, dst, room);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      errno = e;
      return read_file_error(err, "read", r->path);
    }
    if (n == 0) break;
    total += (uint64_t)n;
  }
  close(fd);
  reply->len = (uint32_t)(total < r->max_bytes ? total : r->max_bytes);
  reply->size = regular ? stx.stx_size : total;
  reply->dax = (stx.stx_attributes_mask & STATX_ATTR_DAX) != 0 &&
               (stx.stx_attributes & STATX_ATTR_DAX) != 0;
  return 0;
}

static const struct kf_core_ops g_ops = {
    KF_AGENT_GUEST_LINUX, ready,        memory,   set_identity, dirty_pages,
    hash_range,           random_bytes, read_file,    kf_container_call,
};

int kf_linux_platform_init(const struct kf_linux_config* config) {
  g.config = *config;
  if (g.config.buffer_bytes == 0) g.config.buffer_bytes = 4096;
  void* p = mmap(NULL, g.config.buffer_bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return -1;
  g.buffer = p;
  uint64_t* words = p;
  uint64_t n = g.config.init_bytes / 8;
  for (uint64_t i = 0; i < n; ++i) words[i] = kf_init_pattern(i * 8);
  g.init_hash = kf_hash_words(KF_HASH_SEED, words, n);
  kf_containers_init(g.config.container_rootfs != NULL ? g.config.container_rootfs : "/rootfs",
                     g.config.state_dir != NULL ? g.config.state_dir : "/run/kf-agent",
                     g.config.no_pivot);
  kf_core_init(&g_ops);
  return 0;
}

void kf_linux_platform_set_boot_ns(uint64_t boot_ns) { g.boot_ns = boot_ns; }

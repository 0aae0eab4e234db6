#include "tests/agent_codec_testlib.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

namespace kf::testing {

namespace {

// Random C string of 0..cap-1 printable ASCII bytes (proto3 strings must be
// UTF-8; libprotobuf complains about anything else).
void RandomString(std::mt19937_64& rng, char* out, size_t cap) {
  size_t n = rng() % cap;
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>(0x20 + rng() % 95);
  out[n] = 0;
}

uint32_t RandomBytes(std::mt19937_64& rng, uint8_t* out, size_t cap) {
  uint32_t n = static_cast<uint32_t>(rng() % (cap + 1));
  for (uint32_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(rng());
  return n;
}

}  // namespace

uint64_t RandomU64(std::mt19937_64& rng) {
  const unsigned bits = rng() % 65;  // 0..64
  if (bits == 0) return 0;
  uint64_t v = rng();
  return bits == 64 ? v : v & ((uint64_t{1} << bits) - 1);
}

void RandomRequest(std::mt19937_64& rng, kf_agent_request* m) {
  std::memset(m, 0, sizeof *m);
  static constexpr uint32_t kKinds[] = {KF_AGENT_PING,        KF_AGENT_SET_IDENTITY,
                                        KF_AGENT_GET_IDENTITY, KF_AGENT_GET_STATS,
                                        KF_AGENT_DIRTY_PAGES,  KF_AGENT_HASH_RANGE,
                                        KF_AGENT_RANDOM,       KF_AGENT_READ_FILE};
  m->kind = kKinds[rng() % std::size(kKinds)];
  switch (m->kind) {
    case KF_AGENT_PING: m->u.ping.echo = RandomU64(rng); break;
    case KF_AGENT_SET_IDENTITY: {
      auto& s = m->u.set_identity;
      RandomString(rng, s.sandbox_id, sizeof s.sandbox_id);
      RandomString(rng, s.hostname, sizeof s.hostname);
      s.entropy_len = RandomBytes(rng, s.entropy, sizeof s.entropy);
      s.wall_clock_unix_ns = RandomU64(rng);
      break;
    }
    case KF_AGENT_DIRTY_PAGES:
      m->u.dirty_pages = {RandomU64(rng), RandomU64(rng), RandomU64(rng)};
      break;
    case KF_AGENT_HASH_RANGE: m->u.hash_range = {RandomU64(rng), RandomU64(rng)}; break;
    case KF_AGENT_RANDOM: m->u.random.bytes = static_cast<uint32_t>(RandomU64(rng)); break;
    case KF_AGENT_READ_FILE:
      RandomString(rng, m->u.read_file.path, sizeof m->u.read_file.path);
      m->u.read_file.max_bytes = static_cast<uint32_t>(RandomU64(rng));
      break;
    default: break;  // GET_IDENTITY, GET_STATS: kind only
  }
}

void RandomResponse(std::mt19937_64& rng, kf_agent_response* m) {
  std::memset(m, 0, sizeof *m);
  static constexpr uint32_t kKinds[] = {
      KF_AGENT_PING,        KF_AGENT_SET_IDENTITY, KF_AGENT_GET_IDENTITY, KF_AGENT_GET_STATS,
      KF_AGENT_DIRTY_PAGES, KF_AGENT_HASH_RANGE,   KF_AGENT_RANDOM,       KF_AGENT_READ_FILE,
      KF_AGENT_READY,       KF_AGENT_ERROR};
  m->kind = kKinds[rng() % std::size(kKinds)];
  switch (m->kind) {
    case KF_AGENT_PING: m->u.ping = {RandomU64(rng), RandomU64(rng)}; break;
    case KF_AGENT_SET_IDENTITY: m->u.set_identity.identity_sets = RandomU64(rng); break;
    case KF_AGENT_GET_IDENTITY: {
      auto& g = m->u.get_identity;
      RandomString(rng, g.sandbox_id, sizeof g.sandbox_id);
      RandomString(rng, g.hostname, sizeof g.hostname);
      g.wall_clock_unix_ns = RandomU64(rng);
      g.identity_sets = RandomU64(rng);
      break;
    }
    case KF_AGENT_GET_STATS:
      m->u.get_stats = {RandomU64(rng), RandomU64(rng), RandomU64(rng), RandomU64(rng)};
      break;
    case KF_AGENT_DIRTY_PAGES: m->u.dirty_pages.pages = RandomU64(rng); break;
    case KF_AGENT_HASH_RANGE: m->u.hash_range.hash = RandomU64(rng); break;
    case KF_AGENT_RANDOM:
      m->u.random.len = RandomBytes(rng, m->u.random.data, sizeof m->u.random.data);
      break;
    case KF_AGENT_READ_FILE: {
      auto& r = m->u.read_file;
      r.len = RandomBytes(rng, r.data, sizeof r.data);
      r.size = RandomU64(rng);
      r.dax = static_cast<uint32_t>(rng() % 2);  // a proto bool
      break;
    }
    case KF_AGENT_READY: {
      auto& r = m->u.ready;
      r.agent_version = static_cast<uint32_t>(RandomU64(rng));
      r.guest_kind = static_cast<int32_t>(rng() % 4);
      r.mem_total = RandomU64(rng);
      r.init_bytes = RandomU64(rng);
      r.init_hash = RandomU64(rng);
      r.boot_ns = RandomU64(rng);
      break;
    }
    case KF_AGENT_ERROR:
      m->u.error.code = static_cast<int32_t>(rng() % 7);
      RandomString(rng, m->u.error.message, sizeof m->u.error.message);
      break;
    default: break;
  }
}

pb::Request ToProto(const kf_agent_request& m) {
  pb::Request p;
  switch (m.kind) {
    case KF_AGENT_PING: p.mutable_ping()->set_echo(m.u.ping.echo); break;
    case KF_AGENT_SET_IDENTITY: {
      const auto& s = m.u.set_identity;
      auto* q = p.mutable_set_identity();
      q->set_sandbox_id(s.sandbox_id);
      q->set_hostname(s.hostname);
      q->set_entropy(std::string(reinterpret_cast<const char*>(s.entropy), s.entropy_len));
      q->set_wall_clock_unix_ns(s.wall_clock_unix_ns);
      break;
    }
    case KF_AGENT_GET_IDENTITY: p.mutable_get_identity(); break;
    case KF_AGENT_GET_STATS: p.mutable_get_stats(); break;
    case KF_AGENT_DIRTY_PAGES: {
      auto* q = p.mutable_dirty_pages();
      q->set_gpa(m.u.dirty_pages.gpa);
      q->set_pages(m.u.dirty_pages.pages);
      q->set_value(m.u.dirty_pages.value);
      break;
    }
    case KF_AGENT_HASH_RANGE:
      p.mutable_hash_range()->set_gpa(m.u.hash_range.gpa);
      p.mutable_hash_range()->set_bytes(m.u.hash_range.bytes);
      break;
    case KF_AGENT_RANDOM: p.mutable_random()->set_bytes(m.u.random.bytes); break;
    case KF_AGENT_READ_FILE:
      p.mutable_read_file()->set_path(m.u.read_file.path);
      p.mutable_read_file()->set_max_bytes(m.u.read_file.max_bytes);
      break;
    default: break;
  }
  return p;
}

pb::Response ToProto(const kf_agent_response& m) {
  pb::Response p;
  switch (m.kind) {
    case KF_AGENT_PING:
      p.mutable_ping()->set_echo(m.u.ping.echo);
      p.mutable_ping()->set_pings_served(m.u.ping.pings_served);
      break;
    case KF_AGENT_SET_IDENTITY:
      p.mutable_set_identity()->set_identity_sets(m.u.set_identity.identity_sets);
      break;
    case KF_AGENT_GET_IDENTITY: {
      const auto& g = m.u.get_identity;
      auto* q = p.mutable_get_identity();
      q->set_sandbox_id(g.sandbox_id);
      q->set_hostname(g.hostname);
      q->set_wall_clock_unix_ns(g.wall_clock_unix_ns);
      q->set_identity_sets(g.identity_sets);
      break;
    }
    case KF_AGENT_GET_STATS: {
      auto* q = p.mutable_get_stats();
      q->set_mem_total(m.u.get_stats.mem_total);
      q->set_mem_initialised(m.u.get_stats.mem_initialised);
      q->set_pages_dirtied(m.u.get_stats.pages_dirtied);
      q->set_requests_served(m.u.get_stats.requests_served);
      break;
    }
    case KF_AGENT_DIRTY_PAGES: p.mutable_dirty_pages()->set_pages(m.u.dirty_pages.pages); break;
    case KF_AGENT_HASH_RANGE: p.mutable_hash_range()->set_hash(m.u.hash_range.hash); break;
    case KF_AGENT_RANDOM:
      p.mutable_random()->set_data(
          std::string(reinterpret_cast<const char*>(m.u.random.data), m.u.random.len));
      break;
    case KF_AGENT_READ_FILE: {
      const auto& r = m.u.read_file;
      auto* q = p.mutable_read_file();
      q->set_data(std::string(reinterpret_cast<const char*>(r.data), r.len));
      q->set_size(r.size);
      q->set_dax(r.dax != 0);
      break;
    }
    case KF_AGENT_READY: {
      const auto& r = m.u.ready;
      auto* q = p.mutable_ready();
      q->set_agent_version(r.agent_version);
      q->set_guest_kind(static_cast<pb::GuestKind>(r.guest_kind));
      q->set_mem_total(r.mem_total);
      q->set_init_bytes(r.init_bytes);
      q->set_init_hash(r.init_hash);
      q->set_boot_ns(r.boot_ns);
      break;
    }
    case KF_AGENT_ERROR:
      p.mutable_error()->set_code(static_cast<pb::ErrorCode>(m.u.error.code));
      p.mutable_error()->set_message(m.u.error.message);
      break;
    default: break;
  }
  return p;
}

FencedBuffer::FencedBuffer(size_t capacity) : capacity_(capacity) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t body = (capacity + page - 1) / page * page;
  map_size_ = body + 2 * page;
  void* p = mmap(nullptr, map_size_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::runtime_error("mmap for FencedBuffer");
  map_ = static_cast<uint8_t*>(p);
  if (mprotect(map_ + page, body, PROT_READ | PROT_WRITE) != 0)
    throw std::runtime_error("mprotect for FencedBuffer");
  end_ = map_ + page + body;
}

FencedBuffer::~FencedBuffer() { munmap(map_, map_size_); }

const uint8_t* FencedBuffer::Put(const std::string& bytes) {
  if (bytes.size() > capacity_) throw std::length_error("FencedBuffer::Put over capacity");
  uint8_t* start = end_ - bytes.size();
  std::memcpy(start, bytes.data(), bytes.size());
  return start;
}

}  // namespace kf::testing

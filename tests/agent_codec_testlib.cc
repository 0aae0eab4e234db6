#include "tests/agent_codec_testlib.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
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

// A random C string for an array of `cap` bytes: half of the time at most 8
// bytes (ids and paths are short in practice), else up to the cap.
void RandomId(std::mt19937_64& rng, char* out, size_t cap) {
  RandomString(rng, out, rng() % 2 ? std::min<size_t>(cap, 9) : cap);
}

// Random entries, up to the list's caps (sometimes right at them).
void RandomStrv(std::mt19937_64& rng, void* strv, size_t pool_cap, uint32_t max_entries) {
  const uint32_t want = static_cast<uint32_t>(rng() % (max_entries + 1));
  const size_t item_cap = rng() % 4 == 0 ? pool_cap / (want + 1) + 1 : 24;
  std::string s;
  for (uint32_t i = 0; i < want; ++i) {
    s.assign(rng() % item_cap, '\0');
    for (auto& c : s) c = static_cast<char>(0x20 + rng() % 95);
    if (kf_agent_strv_add(strv, pool_cap, max_entries, s.c_str()) != KF_PB_OK) break;
  }
}

void RandomProcess(std::mt19937_64& rng, kf_agent_process* p) {
  RandomStrv(rng, &p->args, KF_AGENT_ARGV_BYTES, KF_AGENT_ARGV_ENTRIES);
  RandomStrv(rng, &p->env, KF_AGENT_ARGV_BYTES, KF_AGENT_ARGV_ENTRIES);
  RandomId(rng, p->cwd, sizeof p->cwd);
  p->uid = static_cast<uint32_t>(RandomU64(rng));
  p->gid = static_cast<uint32_t>(RandomU64(rng));
  p->terminal = static_cast<uint32_t>(rng() % 2);
}

void StrvToProto(const void* strv, google::protobuf::RepeatedPtrField<std::string>* out) {
  for (const char* e = kf_agent_strv_next(strv, nullptr); e != nullptr;
       e = kf_agent_strv_next(strv, e))
    out->Add(e);
}

void ProcessToProto(const kf_agent_process& p, pb::Process* q) {
  StrvToProto(&p.args, q->mutable_args());
  StrvToProto(&p.env, q->mutable_env());
  q->set_cwd(p.cwd);
  q->set_uid(p.uid);
  q->set_gid(p.gid);
  q->set_terminal(p.terminal != 0);
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
  static constexpr uint32_t kKinds[] = {
      KF_AGENT_PING,           KF_AGENT_SET_IDENTITY,  KF_AGENT_GET_IDENTITY,
      KF_AGENT_GET_STATS,      KF_AGENT_DIRTY_PAGES,   KF_AGENT_HASH_RANGE,
      KF_AGENT_RANDOM,         KF_AGENT_READ_FILE,     KF_AGENT_CREATE_CONTAINER,
      KF_AGENT_START_CONTAINER, KF_AGENT_EXEC_PROCESS, KF_AGENT_WAIT_PROCESS,
      KF_AGENT_SIGNAL_PROCESS, KF_AGENT_READ_STDOUT,   KF_AGENT_READ_STDERR,
      KF_AGENT_WRITE_STDIN,    KF_AGENT_CLOSE_STDIN,   KF_AGENT_REMOVE_CONTAINER};
  m->kind = kKinds[rng() % std::size(kKinds)];
  switch (m->kind) {
    case KF_AGENT_CREATE_CONTAINER: {
      auto& c = m->u.create_container;
      RandomId(rng, c.container_id, sizeof c.container_id);
      RandomId(rng, c.rootfs, sizeof c.rootfs);
      c.has_process = static_cast<uint32_t>(rng() % 4 != 0);
      if (c.has_process != 0 && rng() % 8 != 0) RandomProcess(rng, &c.process);
      RandomId(rng, c.hostname, sizeof c.hostname);
      c.mounts_count = static_cast<uint32_t>(rng() % (KF_AGENT_MOUNTS_MAX + 1));
      for (uint32_t i = 0; i < c.mounts_count; ++i) {
        auto& mt = c.mounts[i];
        if (rng() % 8 == 0) continue;  // an empty Mount: still one entry
        RandomId(rng, mt.destination, sizeof mt.destination);
        RandomId(rng, mt.type, sizeof mt.type);
        RandomId(rng, mt.source, sizeof mt.source);
        RandomStrv(rng, &mt.options, KF_AGENT_OPTV_BYTES, KF_AGENT_OPTV_ENTRIES);
      }
      RandomStrv(rng, &c.namespaces, KF_AGENT_OPTV_BYTES, KF_AGENT_NAMESPACES_MAX);
      break;
    }
    case KF_AGENT_EXEC_PROCESS: {
      auto& e = m->u.exec_process;
      RandomId(rng, e.container_id, sizeof e.container_id);
      RandomId(rng, e.exec_id, sizeof e.exec_id);
      e.has_process = static_cast<uint32_t>(rng() % 4 != 0);
      if (e.has_process != 0) RandomProcess(rng, &e.process);
      break;
    }
    case KF_AGENT_START_CONTAINER:
    case KF_AGENT_REMOVE_CONTAINER:
      RandomId(rng, m->u.start_container.container_id, KF_AGENT_ID_MAX);
      break;
    case KF_AGENT_CLOSE_STDIN:
      RandomId(rng, m->u.close_stdin.container_id, KF_AGENT_ID_MAX);
      RandomId(rng, m->u.close_stdin.exec_id, KF_AGENT_ID_MAX);
      break;
    case KF_AGENT_WAIT_PROCESS: {
      auto& w = m->u.wait_process;
      RandomId(rng, w.container_id, sizeof w.container_id);
      RandomId(rng, w.exec_id, sizeof w.exec_id);
      w.timeout_ms = static_cast<uint32_t>(RandomU64(rng));
      break;
    }
    case KF_AGENT_SIGNAL_PROCESS: {
      auto& g = m->u.signal_process;
      RandomId(rng, g.container_id, sizeof g.container_id);
      RandomId(rng, g.exec_id, sizeof g.exec_id);
      g.signal = static_cast<uint32_t>(RandomU64(rng));
      break;
    }
    case KF_AGENT_READ_STDOUT:
    case KF_AGENT_READ_STDERR: {
      auto& r = m->u.read_stream;
      RandomId(rng, r.container_id, sizeof r.container_id);
      RandomId(rng, r.exec_id, sizeof r.exec_id);
      r.max_bytes = static_cast<uint32_t>(RandomU64(rng));
      r.wait_ms = static_cast<uint32_t>(RandomU64(rng));
      break;
    }
    case KF_AGENT_WRITE_STDIN: {
      auto& w = m->u.write_stdin;
      RandomId(rng, w.container_id, sizeof w.container_id);
      RandomId(rng, w.exec_id, sizeof w.exec_id);
      w.len = RandomBytes(rng, w.data, sizeof w.data);
      break;
    }
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
      KF_AGENT_PING,        KF_AGENT_SET_IDENTITY,   KF_AGENT_GET_IDENTITY,
      KF_AGENT_GET_STATS,   KF_AGENT_DIRTY_PAGES,    KF_AGENT_HASH_RANGE,
      KF_AGENT_RANDOM,      KF_AGENT_READ_FILE,      KF_AGENT_CREATE_CONTAINER,
      KF_AGENT_START_CONTAINER, KF_AGENT_EXEC_PROCESS, KF_AGENT_WAIT_PROCESS,
      KF_AGENT_SIGNAL_PROCESS, KF_AGENT_READ_STDOUT, KF_AGENT_READ_STDERR,
      KF_AGENT_WRITE_STDIN, KF_AGENT_CLOSE_STDIN,    KF_AGENT_REMOVE_CONTAINER,
      KF_AGENT_READY,       KF_AGENT_ERROR};
  m->kind = kKinds[rng() % std::size(kKinds)];
  switch (m->kind) {
    case KF_AGENT_CREATE_CONTAINER:
    case KF_AGENT_START_CONTAINER:
    case KF_AGENT_EXEC_PROCESS:
      m->u.pid.pid = static_cast<uint32_t>(RandomU64(rng));
      break;
    case KF_AGENT_WAIT_PROCESS:
      m->u.wait_process.exited = static_cast<uint32_t>(rng() % 2);
      m->u.wait_process.exit_code = static_cast<int32_t>(RandomU64(rng));
      m->u.wait_process.signal = static_cast<int32_t>(RandomU64(rng));
      break;
    case KF_AGENT_READ_STDOUT:
    case KF_AGENT_READ_STDERR:
      m->u.read_stream.len = RandomBytes(rng, m->u.read_stream.data, sizeof m->u.read_stream.data);
      m->u.read_stream.eof = static_cast<uint32_t>(rng() % 2);
      break;
    case KF_AGENT_WRITE_STDIN:
      m->u.write_stdin.len = static_cast<uint32_t>(RandomU64(rng));
      break;
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
      m->u.error.code = static_cast<int32_t>(rng() % 12);
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
    case KF_AGENT_CREATE_CONTAINER: {
      const auto& c = m.u.create_container;
      auto* q = p.mutable_create_container();
      q->set_container_id(c.container_id);
      q->set_rootfs(c.rootfs);
      if (c.has_process != 0) ProcessToProto(c.process, q->mutable_process());
      q->set_hostname(c.hostname);
      for (uint32_t i = 0; i < c.mounts_count; ++i) {
        auto* mt = q->add_mounts();
        mt->set_destination(c.mounts[i].destination);
        mt->set_type(c.mounts[i].type);
        mt->set_source(c.mounts[i].source);
        StrvToProto(&c.mounts[i].options, mt->mutable_options());
      }
      StrvToProto(&c.namespaces, q->mutable_namespaces());
      break;
    }
    case KF_AGENT_START_CONTAINER:
      p.mutable_start_container()->set_container_id(m.u.start_container.container_id);
      break;
    case KF_AGENT_EXEC_PROCESS: {
      const auto& e = m.u.exec_process;
      auto* q = p.mutable_exec_process();
      q->set_container_id(e.container_id);
      q->set_exec_id(e.exec_id);
      if (e.has_process != 0) ProcessToProto(e.process, q->mutable_process());
      break;
    }
    case KF_AGENT_WAIT_PROCESS: {
      auto* q = p.mutable_wait_process();
      q->set_container_id(m.u.wait_process.container_id);
      q->set_exec_id(m.u.wait_process.exec_id);
      q->set_timeout_ms(m.u.wait_process.timeout_ms);
      break;
    }
    case KF_AGENT_SIGNAL_PROCESS: {
      auto* q = p.mutable_signal_process();
      q->set_container_id(m.u.signal_process.container_id);
      q->set_exec_id(m.u.signal_process.exec_id);
      q->set_signal(m.u.signal_process.signal);
      break;
    }
    case KF_AGENT_READ_STDOUT:
    case KF_AGENT_READ_STDERR: {
      auto* q = m.kind == KF_AGENT_READ_STDOUT ? p.mutable_read_stdout() : p.mutable_read_stderr();
      q->set_container_id(m.u.read_stream.container_id);
      q->set_exec_id(m.u.read_stream.exec_id);
      q->set_max_bytes(m.u.read_stream.max_bytes);
      q->set_wait_ms(m.u.read_stream.wait_ms);
      break;
    }
    case KF_AGENT_WRITE_STDIN: {
      const auto& w = m.u.write_stdin;
      auto* q = p.mutable_write_stdin();
      q->set_container_id(w.container_id);
      q->set_exec_id(w.exec_id);
      q->set_data(std::string(reinterpret_cast<const char*>(w.data), w.len));
      break;
    }
    case KF_AGENT_CLOSE_STDIN:
      p.mutable_close_stdin()->set_container_id(m.u.close_stdin.container_id);
      p.mutable_close_stdin()->set_exec_id(m.u.close_stdin.exec_id);
      break;
    case KF_AGENT_REMOVE_CONTAINER:
      p.mutable_remove_container()->set_container_id(m.u.remove_container.container_id);
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
    case KF_AGENT_CREATE_CONTAINER: p.mutable_create_container()->set_pid(m.u.pid.pid); break;
    case KF_AGENT_START_CONTAINER: p.mutable_start_container()->set_pid(m.u.pid.pid); break;
    case KF_AGENT_EXEC_PROCESS: p.mutable_exec_process()->set_pid(m.u.pid.pid); break;
    case KF_AGENT_WAIT_PROCESS: {
      auto* q = p.mutable_wait_process();
      q->set_exited(m.u.wait_process.exited != 0);
      q->set_exit_code(m.u.wait_process.exit_code);
      q->set_signal(m.u.wait_process.signal);
      break;
    }
    case KF_AGENT_SIGNAL_PROCESS: p.mutable_signal_process(); break;
    case KF_AGENT_READ_STDOUT:
    case KF_AGENT_READ_STDERR: {
      auto* q = m.kind == KF_AGENT_READ_STDOUT ? p.mutable_read_stdout() : p.mutable_read_stderr();
      q->set_data(std::string(reinterpret_cast<const char*>(m.u.read_stream.data),
                              m.u.read_stream.len));
      q->set_eof(m.u.read_stream.eof != 0);
      break;
    }
    case KF_AGENT_WRITE_STDIN: p.mutable_write_stdin()->set_len(m.u.write_stdin.len); break;
    case KF_AGENT_CLOSE_STDIN: p.mutable_close_stdin(); break;
    case KF_AGENT_REMOVE_CONTAINER: p.mutable_remove_container(); break;
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

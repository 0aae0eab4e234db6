// libFuzzer target: the guest agent's protocol core (agent/core/core.h),
// kf_core_serve_frame and the dispatch behind it, which every platform (the
// bare guest, the Linux agent) runs on the bytes the host sends.
//
// Feeds: one connection per input, served the way agent/bare/agent.c and
// agent/linux/server.c serve it: the Ready frame, then the stream, handed
// over in chunks and served frame by frame with `avail` bytes copied into a
// buffer of exactly that size and the reply going to one of exactly
// KF_CORE_REPLY_FRAME_MAX bytes (so ASan sees an access past either); a
// PENDING frame is served again later, a BAD one ends the connection. The
// platform is a fake table of operations (the Fake* functions below, in a
// Linux-like table and a bare-like one without files or containers):
// deterministic, every reply within the bounds core.h documents, and
// answering with an error or, for container calls, KF_CORE_PENDING where
// the input says.
// Input layout: the stream, then the choices, then one byte k, the number of
// choice bytes before it (fewer if the input is shorter). The choices are
// read in turn, cycling, and all read 0 when k = 0: the first picks the
// table (bit 0: bare-like); each delivery reads one (0: the rest of the
// stream, 1..127: that many bytes, c >= 128: (c - 127) * 256 bytes); each
// platform call reads one (3 mod 4: an error, 2 mod 4: a container call
// stays pending, at most 3 times in a row; else an answer), then its values.
// Checks: consumed <= avail, out_len <= cap; the status is what the input's
// first frame calls for (NEED_MORE, BAD, SERVED, PENDING only when the fake
// said so); NEED_MORE and PENDING consume and write nothing, out_len 0 and
// the reply buffer untouched; SERVED consumes exactly that frame; every
// reply (the Ready frame too) is a valid response frame on the request's
// stream, and its payload is exactly the encoding of the response the
// platform's answers call for (decoded as a check too): BAD_FRAME,
// BAD_MESSAGE, UNKNOWN_REQUEST, the request check's error, the fake's
// error, or the reply of the request's kind with the fake's values, the
// core's counters and the recorded identity. The core only hands the fake
// what its header promises (checked requests, sizes within their caps), and
// a pending request is not counted.
// The core's state is global with no reset (one agent per process): the
// counters and the recorded identity carry over from one input to the next.
// The expected replies follow them through a shadow that lives as long as
// the process (every call to the core goes through this target), so the
// checks hold whatever ran before; a finding is reproduced by its input
// alone, as the shadow starts where the core does.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "agent/core/core.h"
#include "agent/proto/agent_codec.h"
#include "agent/proto/agent_frame.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr size_t kCap = KF_CORE_REPLY_FRAME_MAX;
constexpr int kMaxPendingInARow = 3;  // then the fake answers: the connection progresses
constexpr uint8_t kCanary = 0xa5;

// The fake platform's and the delivery's decisions, read in turn from the
// input's choice bytes (cycling; all 0 when there are none).
class Choices {
 public:
  void Reset(const uint8_t* p, size_t n) {
    p_ = p;
    n_ = n;
    i_ = 0;
  }
  uint8_t Byte() { return n_ == 0 ? 0 : p_[i_++ % n_]; }
  uint32_t U32() {
    uint32_t v = 0;
    for (int b = 0; b < 4; ++b) v |= uint32_t{Byte()} << (8 * b);
    return v;
  }
  uint64_t U64() {
    const uint64_t low = U32();
    return low | uint64_t{U32()} << 32;
  }

 private:
  const uint8_t* p_ = nullptr;
  size_t n_ = 0;
  size_t i_ = 0;
};

Choices g_choices;
int g_pending_in_a_row = 0;
// What the fake answered last: the response the core should encode for the
// request being served (its kind is set by the expectation code below).
kf_agent_response g_answer;
int g_answer_rc = 0;
bool g_answered = false;  // the fake answered during this call to the core
kf_agent_ready g_ready;   // what ready() filled in

// ---- the fake platform ----

// The first byte of an answer: 3 mod 4 fails (with the fake's error),
// 2 mod 4 leaves a container call pending (kMaxPendingInARow at most),
// anything else succeeds.
enum class Answer { kOk, kError, kPending };
Answer Decide(bool may_pend) {
  const uint8_t c = g_choices.Byte();
  if (c % 4 == 3) return Answer::kError;
  if (c % 4 == 2 && may_pend && g_pending_in_a_row < kMaxPendingInARow) return Answer::kPending;
  return Answer::kOk;
}

// An error whose message length (0..510 bytes) crosses KF_AGENT_ERROR_MAX.
int FailWith(kf_agent_error* err) {
  const int32_t code = static_cast<int32_t>(g_choices.U32());
  const std::string message = "fake failure " + std::string(2 * g_choices.Byte(), 'x');
  kf_core_set_error(err, code, message.c_str());
  std::memset(&g_answer, 0, sizeof g_answer);
  g_answer.kind = KF_AGENT_ERROR;
  g_answer.u.error.code = code;
  const std::string kept = message.substr(0, KF_AGENT_ERROR_MAX - 1);
  std::memcpy(g_answer.u.error.message, kept.c_str(), kept.size() + 1);
  g_answer_rc = -1;
  g_answered = true;
  return -1;
}

// Data the fake hands back: a pattern that depends on where it is and a salt.
void Fill(uint8_t* out, uint32_t n) {
  const uint8_t salt = g_choices.Byte();
  for (uint32_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(i * 31u + salt);
}

// Up to `max` bytes: `max` when the choice is 0.
uint32_t UpTo(uint32_t max) {
  return static_cast<uint32_t>(max - g_choices.U32() % (uint64_t{max} + 1));
}

// A successful answer: the fake then fills the reply's body and keeps a
// copy of it for the expectation (Keep).
int Succeed() {
  std::memset(&g_answer, 0, sizeof g_answer);
  g_answer_rc = 0;
  g_answered = true;
  return 0;
}
template <typename T>
void Keep(T* answer_member, const T& filled) {
  std::memcpy(answer_member, &filled, sizeof filled);
}

void FakeReady(kf_agent_ready* r) {
  r->mem_total = g_choices.U64();
  r->init_bytes = g_choices.U64();
  r->init_hash = g_choices.U64();
  r->boot_ns = g_choices.U64();
  g_ready = *r;
}

uint64_t g_mem_total, g_mem_initialised;
void FakeMemory(uint64_t* mem_total, uint64_t* mem_initialised) {
  *mem_total = g_mem_total = g_choices.U64();
  *mem_initialised = g_mem_initialised = g_choices.U64();
}

int FakeSetIdentity(const kf_agent_set_identity_req* r, kf_agent_error* err) {
  KF_FUZZ_CHECK(r->entropy_len >= KF_AGENT_ENTROPY_MIN && r->entropy_len <= KF_AGENT_ENTROPY_MAX,
                "set_identity got %u bytes of entropy", r->entropy_len);
  if (Decide(false) == Answer::kError) return FailWith(err);
  return Succeed();
}

int FakeDirtyPages(const kf_agent_dirty_pages_req* r, kf_agent_dirty_pages_reply* reply,
                   kf_agent_error* err) {
  if (Decide(false) == Answer::kError) return FailWith(err);
  Succeed();
  reply->pages = r->pages ^ g_choices.U32();  // what the platform says it dirtied
  Keep(&g_answer.u.dirty_pages, *reply);
  return 0;
}

int FakeHashRange(const kf_agent_hash_range_req* r, kf_agent_hash_range_reply* reply,
                  kf_agent_error* err) {
  if (Decide(false) == Answer::kError) return FailWith(err);
  Succeed();
  reply->hash = r->gpa * 31 + r->bytes + g_choices.U64();
  Keep(&g_answer.u.hash_range, *reply);
  return 0;
}

int FakeRandom(uint8_t* out, uint32_t bytes, kf_agent_error* err) {
  KF_FUZZ_CHECK(bytes <= KF_AGENT_RANDOM_MAX, "random asked for %u bytes", bytes);
  if (Decide(false) == Answer::kError) return FailWith(err);
  Succeed();
  Fill(out, bytes);
  std::memcpy(g_answer.u.random.data, out, bytes);
  g_answer.u.random.len = bytes;
  return 0;
}

int FakeReadFile(const kf_agent_read_file_req* r, kf_agent_read_file_reply* reply,
                 kf_agent_error* err) {
  KF_FUZZ_CHECK(r->max_bytes <= KF_AGENT_READ_FILE_MAX && r->path[0] == '/',
                "read_file got max_bytes %u, path '%.*s'", r->max_bytes,
                static_cast<int>(KF_AGENT_PATH_MAX), r->path);
  if (Decide(false) == Answer::kError) return FailWith(err);
  Succeed();
  reply->len = UpTo(r->max_bytes);
  Fill(reply->data, reply->len);
  const bool larger = g_choices.Byte() & 1;  // the file goes on past what was read
  reply->size = reply->len + (larger ? g_choices.U64() % (1ull << 40) : 0);
  reply->dax = g_choices.Byte() & 1;
  Keep(&g_answer.u.read_file, *reply);
  return 0;
}

// The container requests, listed here rather than taken from the core or
// the codec: the oracle must not share the code it checks.
bool IsContainerKind(uint32_t kind) {
  switch (kind) {
    case KF_AGENT_CREATE_CONTAINER:
    case KF_AGENT_START_CONTAINER:
    case KF_AGENT_EXEC_PROCESS:
    case KF_AGENT_WAIT_PROCESS:
    case KF_AGENT_SIGNAL_PROCESS:
    case KF_AGENT_READ_STDOUT:
    case KF_AGENT_READ_STDERR:
    case KF_AGENT_WRITE_STDIN:
    case KF_AGENT_CLOSE_STDIN:
    case KF_AGENT_REMOVE_CONTAINER:
      return true;
    default:
      return false;
  }
}

int FakeContainer(const kf_agent_request* req, kf_agent_response* resp) {
  KF_FUZZ_CHECK(IsContainerKind(req->kind), "container() got a request of kind %u", req->kind);
  KF_FUZZ_CHECK(kf_agent_request_check(req) == 0, "container() got an unchecked request");
  switch (Decide(true)) {
    case Answer::kPending:
      ++g_pending_in_a_row;
      return KF_CORE_PENDING;  // nothing touched: the same request comes again
    case Answer::kError:
      return FailWith(&resp->u.error);
    case Answer::kOk:
      break;
  }
  Succeed();
  switch (req->kind) {
    case KF_AGENT_CREATE_CONTAINER:
    case KF_AGENT_START_CONTAINER:
    case KF_AGENT_EXEC_PROCESS:
      resp->u.pid.pid = g_choices.U32();
      Keep(&g_answer.u.pid, resp->u.pid);
      break;
    case KF_AGENT_WAIT_PROCESS:
      resp->u.wait_process.exited = g_choices.Byte() & 1;
      resp->u.wait_process.exit_code = static_cast<int32_t>(g_choices.U32());
      resp->u.wait_process.signal = static_cast<int32_t>(g_choices.U32());
      Keep(&g_answer.u.wait_process, resp->u.wait_process);
      break;
    case KF_AGENT_READ_STDOUT:
    case KF_AGENT_READ_STDERR: {
      kf_agent_read_stream_reply& r = resp->u.read_stream;
      r.len = UpTo(req->u.read_stream.max_bytes);
      Fill(r.data, r.len);
      r.eof = g_choices.Byte() & 1;
      Keep(&g_answer.u.read_stream, r);
      break;
    }
    case KF_AGENT_WRITE_STDIN:
      resp->u.write_stdin.len = UpTo(req->u.write_stdin.len);
      Keep(&g_answer.u.write_stdin, resp->u.write_stdin);
      break;
    default:  // SignalProcess, CloseStdin, RemoveContainer: no body
      break;
  }
  return 0;
}

// A Linux-like platform (files, containers) and a bare-like one (neither).
constexpr kf_core_ops kLinuxOps = {KF_AGENT_GUEST_LINUX, FakeReady,      FakeMemory,
                                   FakeSetIdentity,      FakeDirtyPages, FakeHashRange,
                                   FakeRandom,           FakeReadFile,   FakeContainer};
constexpr kf_core_ops kBareOps = {KF_AGENT_GUEST_BARE, FakeReady,      FakeMemory,
                                  FakeSetIdentity,     FakeDirtyPages, FakeHashRange,
                                  FakeRandom,          nullptr,        nullptr};

// ---- what the core should answer ----

// The core's global state as this target has driven it (see the header).
struct Shadow {
  uint64_t pings = 0, pages_dirtied = 0, requests_served = 0;
  kf_agent_get_identity_reply identity{};
};
Shadow g_shadow;

kf_agent_request g_request;
kf_agent_response g_expected, g_decoded;

void ExpectError(int32_t code, const char* message) {
  std::memset(&g_expected, 0, sizeof g_expected);
  g_expected.kind = KF_AGENT_ERROR;
  g_expected.u.error.code = code;
  std::strncpy(g_expected.u.error.message, message, KF_AGENT_ERROR_MAX - 1);
}

void CopyString(char* dst, const char* src) {
  std::strncpy(dst, src, KF_AGENT_STR_MAX - 1);
  dst[KF_AGENT_STR_MAX - 1] = 0;
}

// The response to the served payload: from its decoding, the checks, the
// shadow and what the fake answered (the fake ran inside the core, before
// this). Updates the shadow as the core updated its state.
void ExpectResponse(const std::vector<uint8_t>& payload, const kf_core_ops& ops) {
  ++g_shadow.requests_served;
  const int rc = kf_agent_decode_request(payload.data(), payload.size(), &g_request);
  const char* why = nullptr;
  int check = 0;
  // Refused before the platform is asked anything.
  auto refuse = [](int32_t code, const char* message) {
    KF_FUZZ_CHECK(!g_answered, "the platform was asked about a request refused with %d (%s)", code,
                  message);
    ExpectError(code, message);
  };
  if (rc != KF_PB_OK) return refuse(KF_AGENT_ERR_BAD_MESSAGE, kf_pb_strerror(rc));
  if (IsContainerKind(g_request.kind) && ops.container == nullptr)
    return refuse(KF_AGENT_ERR_UNKNOWN_REQUEST, "containers: this guest runs none");
  if ((check = kf_agent_request_check_why(&g_request, &why)) != 0) return refuse(check, why);

  const uint32_t kind = g_request.kind;
  if (kind == KF_AGENT_SET_IDENTITY) {  // recorded whatever the platform answers
    const kf_agent_set_identity_req& r = g_request.u.set_identity;
    CopyString(g_shadow.identity.sandbox_id, r.sandbox_id);
    CopyString(g_shadow.identity.hostname, r.hostname);
    g_shadow.identity.wall_clock_unix_ns = r.wall_clock_unix_ns;
    ++g_shadow.identity.identity_sets;
  }
  if (kind == KF_AGENT_READ_FILE && ops.read_file == nullptr)
    return refuse(KF_AGENT_ERR_UNKNOWN_REQUEST, "ReadFile: this guest has no files");

  std::memset(&g_expected, 0, sizeof g_expected);
  switch (kind) {
    case KF_AGENT_PING:
      KF_FUZZ_CHECK(!g_answered, "the platform answered a Ping");
      g_expected.kind = KF_AGENT_PING;
      g_expected.u.ping.echo = g_request.u.ping.echo;
      g_expected.u.ping.pings_served = ++g_shadow.pings;
      return;
    case KF_AGENT_GET_IDENTITY:
      g_expected.kind = KF_AGENT_GET_IDENTITY;
      g_expected.u.get_identity = g_shadow.identity;
      return;
    case KF_AGENT_GET_STATS:
      g_expected.kind = KF_AGENT_GET_STATS;
      g_expected.u.get_stats = {g_mem_total, g_mem_initialised, g_shadow.pages_dirtied,
                                g_shadow.requests_served};
      return;
    default:  // the platform's answer
      KF_FUZZ_CHECK(g_answered, "request of kind %u served without asking the platform", kind);
      g_expected = g_answer;
      if (g_answer_rc != 0) return;
      g_expected.kind = kind;
      if (kind == KF_AGENT_SET_IDENTITY)
        g_expected.u.set_identity.identity_sets = g_shadow.identity.identity_sets;
      if (kind == KF_AGENT_DIRTY_PAGES) g_shadow.pages_dirtied += g_answer.u.dirty_pages.pages;
      return;
  }
}

// out[0..n) is a response frame on `stream` whose payload is the encoding of
// g_expected (and decodes).
void CheckReply(const uint8_t* out, size_t n, uint32_t stream, const char* what) {
  KF_FUZZ_CHECK(n > KF_AGENT_FRAME_HEADER_SIZE && n <= kCap, "%s: a reply of %zu bytes", what, n);
  kf_agent_frame_header h;
  KF_FUZZ_CHECK(kf_agent_frame_header_decode(out, &h) == KF_PB_OK, "%s: a bad reply header", what);
  KF_FUZZ_CHECK(h.type == KF_AGENT_FRAME_RESPONSE && h.stream_id == stream &&
                    h.length == n - KF_AGENT_FRAME_HEADER_SIZE,
                "%s: reply header type %u stream %u length %u for %zu bytes on stream %u", what,
                h.type, h.stream_id, h.length, n, stream);
  // Exactly sized, so a decoder overread is ASan's.
  const std::vector<uint8_t> payload(out + KF_AGENT_FRAME_HEADER_SIZE, out + n);
  std::memset(&g_decoded, 0, sizeof g_decoded);
  const int rc = kf_agent_decode_response(payload.data(), payload.size(), &g_decoded);
  KF_FUZZ_CHECK(rc == KF_PB_OK && g_decoded.kind != KF_AGENT_NONE,
                "%s: the reply does not decode: %s", what, kf_pb_strerror(rc));
  static std::vector<uint8_t> expected(kCap);
  size_t len = 0;
  KF_FUZZ_CHECK(
      kf_agent_encode_response(&g_expected, expected.data(), expected.size(), &len) == KF_PB_OK,
      "%s: the expected reply (kind %u) does not encode", what, g_expected.kind);
  const bool same = len == payload.size() && std::memcmp(expected.data(), payload.data(), len) == 0;
  KF_FUZZ_CHECK(same, "%s: reply of kind %u (%s%d) where kind %u (%s%d) was due", what,
                g_decoded.kind, g_decoded.kind == KF_AGENT_ERROR ? "error " : "",
                g_decoded.kind == KF_AGENT_ERROR ? g_decoded.u.error.code : 0, g_expected.kind,
                g_expected.kind == KF_AGENT_ERROR ? "error " : "",
                g_expected.kind == KF_AGENT_ERROR ? g_expected.u.error.code : 0);
}

bool Untouched(const std::vector<uint8_t>& out) {
  for (uint8_t b : out)
    if (b != kCanary) return false;
  return true;
}

// The Ready frame a connection starts with, and its refusal of a short buffer.
void CheckReadyFrame(const kf_core_ops& ops) {
  static std::vector<uint8_t> small(kCap - 1);
  KF_FUZZ_CHECK(kf_core_ready_frame(small.data(), small.size()) == 0,
                "a Ready frame into %zu bytes", small.size());
  static std::vector<uint8_t> out(kCap);
  const size_t n = kf_core_ready_frame(out.data(), out.size());
  std::memset(&g_expected, 0, sizeof g_expected);
  g_expected.kind = KF_AGENT_READY;
  g_expected.u.ready = g_ready;
  g_expected.u.ready.agent_version = KF_AGENT_VERSION;
  g_expected.u.ready.guest_kind = ops.guest_kind;
  CheckReply(out.data(), n, KF_AGENT_STREAM_AGENT, "Ready");
}

// One kf_core_serve_frame call on in[0..avail) as a platform makes it, and
// the checks on what it did. Returns its status.
int ServeOnce(const kf_core_ops& ops, const uint8_t* data, size_t avail, size_t* consumed) {
  const std::vector<uint8_t> in(data, data + avail);  // exactly sized
  // Reused (a fresh 4 KiB block per call costs ASan page faults), refilled.
  static std::vector<uint8_t> out(kCap);
  std::memset(out.data(), kCanary, out.size());
  size_t out_len = 0;
  const uint64_t served_before = kf_core_requests_served();
  g_answered = false;
  const int pending_before = g_pending_in_a_row;
  const int status =
      kf_core_serve_frame(in.data(), in.size(), out.data(), out.size(), consumed, &out_len);
  KF_FUZZ_CHECK(*consumed <= avail && out_len <= kCap, "consumed %zu of %zu, wrote %zu of %zu",
                *consumed, avail, out_len, kCap);

  kf_agent_frame_header h;
  int rc = kf_agent_frame_header_decode(in.data(), &h);
  if (rc == KF_PB_OK && h.type != KF_AGENT_FRAME_REQUEST) rc = KF_PB_ERR_FRAME_TYPE;
  if (rc == KF_PB_OK && h.length > KF_CORE_REQUEST_PAYLOAD_MAX) rc = KF_PB_ERR_FRAME_LENGTH;
  const bool whole = rc == KF_PB_OK && avail - KF_AGENT_FRAME_HEADER_SIZE >= h.length;
  if (status == KF_CORE_FRAME_SERVED) {
    g_pending_in_a_row = 0;
    KF_FUZZ_CHECK(whole, "SERVED without a whole request frame (%s)", kf_pb_strerror(rc));
    KF_FUZZ_CHECK(*consumed == KF_AGENT_FRAME_HEADER_SIZE + h.length,
                  "SERVED consumed %zu of a %u-byte frame", *consumed,
                  KF_AGENT_FRAME_HEADER_SIZE + h.length);
    KF_FUZZ_CHECK(kf_core_requests_served() == served_before + 1, "SERVED counted %llu requests",
                  static_cast<unsigned long long>(kf_core_requests_served() - served_before));
    const std::vector<uint8_t> payload(in.begin() + KF_AGENT_FRAME_HEADER_SIZE,
                                       in.begin() + *consumed);
    ExpectResponse(payload, ops);
    KF_FUZZ_CHECK(kf_core_pages_dirtied() == g_shadow.pages_dirtied, "pages_dirtied %llu, not %llu",
                  static_cast<unsigned long long>(kf_core_pages_dirtied()),
                  static_cast<unsigned long long>(g_shadow.pages_dirtied));
    CheckReply(out.data(), out_len, h.stream_id, "SERVED");
    return status;
  }
  KF_FUZZ_CHECK(*consumed == 0, "status %d consumed %zu", status, *consumed);
  KF_FUZZ_CHECK(kf_core_requests_served() == served_before, "status %d counted a request", status);
  if (status == KF_CORE_FRAME_BAD) {
    KF_FUZZ_CHECK(rc != KF_PB_OK, "BAD for a valid request header");
    ExpectError(KF_AGENT_ERR_BAD_FRAME, kf_pb_strerror(rc));
    CheckReply(out.data(), out_len, h.stream_id, "BAD");
    return status;
  }
  KF_FUZZ_CHECK(out_len == 0 && Untouched(out), "status %d wrote a reply", status);
  if (status == KF_CORE_FRAME_NEED_MORE) {
    KF_FUZZ_CHECK(rc == KF_PB_OK && !whole, "NEED_MORE for %s",
                  rc != KF_PB_OK ? "a bad header" : "a whole frame");
  } else {
    KF_FUZZ_CHECK(status == KF_CORE_FRAME_PENDING, "status %d", status);
    KF_FUZZ_CHECK(whole && g_pending_in_a_row == pending_before + 1,
                  "PENDING without the platform saying so");
  }
  return status;
}

// ---- seeds ----

std::string Frame(uint32_t stream, const kf_agent_request& m) {
  std::vector<uint8_t> buf(KF_AGENT_FRAME_HEADER_SIZE + 64 * 1024);
  size_t n = 0;
  if (kf_agent_encode_request(&m, buf.data() + KF_AGENT_FRAME_HEADER_SIZE,
                              buf.size() - KF_AGENT_FRAME_HEADER_SIZE, &n) != KF_PB_OK)
    std::abort();
  const kf_agent_frame_header h{static_cast<uint32_t>(n), stream, KF_AGENT_FRAME_REQUEST, 0};
  if (kf_agent_frame_header_encode(&h, buf.data()) != KF_PB_OK) std::abort();
  return std::string(reinterpret_cast<const char*>(buf.data()), KF_AGENT_FRAME_HEADER_SIZE + n);
}

// One valid request of every kind, as frames on streams 1, 2, ...
std::string EveryKind() {
  std::string stream;
  uint32_t id = 0;
  auto add = [&](uint32_t kind, auto fill) {
    std::memset(&g_request, 0, sizeof g_request);
    g_request.kind = kind;
    fill(g_request.u);
    if (kf_agent_request_check(&g_request) != 0) std::abort();
    stream += Frame(++id, g_request);
  };
  auto process = [](kf_agent_process& p) {
    KF_AGENT_ARGV_ADD(&p.args, "/bin/sh");
    KF_AGENT_ARGV_ADD(&p.args, "-c");
    KF_AGENT_ARGV_ADD(&p.args, "echo hi");
    KF_AGENT_ARGV_ADD(&p.env, "PATH=/bin");
    std::strcpy(p.cwd, "/");
  };
  using U = decltype(g_request.u);
  add(KF_AGENT_PING, [](U& u) { u.ping.echo = 0x1234; });
  add(KF_AGENT_SET_IDENTITY, [](U& u) {
    std::strcpy(u.set_identity.sandbox_id, "sandbox-1");
    std::strcpy(u.set_identity.hostname, "clone-1");
    u.set_identity.entropy_len = KF_AGENT_ENTROPY_MIN;
    std::memset(u.set_identity.entropy, 0x5a, KF_AGENT_ENTROPY_MIN);
    u.set_identity.wall_clock_unix_ns = 1700000000000000000ull;
  });
  add(KF_AGENT_GET_IDENTITY, [](U&) {});
  add(KF_AGENT_GET_STATS, [](U&) {});
  add(KF_AGENT_DIRTY_PAGES, [](U& u) { u.dirty_pages = {0x400000, 4, 7}; });
  add(KF_AGENT_HASH_RANGE, [](U& u) { u.hash_range = {0x400000, 0x4000}; });
  add(KF_AGENT_RANDOM, [](U& u) { u.random.bytes = 64; });
  add(KF_AGENT_READ_FILE, [](U& u) {
    std::strcpy(u.read_file.path, "/etc/hostname");
    u.read_file.max_bytes = KF_AGENT_READ_FILE_MAX;
  });
  add(KF_AGENT_CREATE_CONTAINER, [&](U& u) {
    kf_agent_create_container_req& c = u.create_container;
    std::strcpy(c.container_id, "c1");
    std::strcpy(c.rootfs, "/rootfs");
    c.has_process = 1;
    process(c.process);
    std::strcpy(c.hostname, "c1");
    c.mounts_count = 1;
    std::strcpy(c.mounts[0].destination, "/proc");
    std::strcpy(c.mounts[0].type, "proc");
    std::strcpy(c.mounts[0].source, "proc");
    kf_agent_strv_add(&c.mounts[0].options, KF_AGENT_OPTV_BYTES, KF_AGENT_OPTV_ENTRIES, "nosuid");
    kf_agent_strv_add(&c.namespaces, KF_AGENT_OPTV_BYTES, KF_AGENT_NAMESPACES_MAX, "pid");
  });
  add(KF_AGENT_START_CONTAINER, [](U& u) { std::strcpy(u.start_container.container_id, "c1"); });
  add(KF_AGENT_EXEC_PROCESS, [&](U& u) {
    std::strcpy(u.exec_process.container_id, "c1");
    std::strcpy(u.exec_process.exec_id, "e1");
    u.exec_process.has_process = 1;
    process(u.exec_process.process);
  });
  add(KF_AGENT_WRITE_STDIN, [](U& u) {
    std::strcpy(u.write_stdin.container_id, "c1");
    std::strcpy(u.write_stdin.exec_id, "e1");
    u.write_stdin.len = 6;
    std::memcpy(u.write_stdin.data, "input\n", 6);
  });
  add(KF_AGENT_CLOSE_STDIN, [](U& u) {
    std::strcpy(u.close_stdin.container_id, "c1");
    std::strcpy(u.close_stdin.exec_id, "e1");
  });
  add(KF_AGENT_READ_STDOUT, [](U& u) {
    std::strcpy(u.read_stream.container_id, "c1");
    u.read_stream.max_bytes = KF_AGENT_STDIO_MAX;
    u.read_stream.wait_ms = 100;
  });
  add(KF_AGENT_READ_STDERR, [](U& u) {
    std::strcpy(u.read_stream.container_id, "c1");
    std::strcpy(u.read_stream.exec_id, "e1");
    u.read_stream.max_bytes = 100;
  });
  add(KF_AGENT_SIGNAL_PROCESS, [](U& u) {
    std::strcpy(u.signal_process.container_id, "c1");
    u.signal_process.signal = 15;
  });
  add(KF_AGENT_WAIT_PROCESS, [](U& u) {
    std::strcpy(u.wait_process.container_id, "c1");
    u.wait_process.timeout_ms = 1000;
  });
  add(KF_AGENT_REMOVE_CONTAINER, [](U& u) { std::strcpy(u.remove_container.container_id, "c1"); });
  add(KF_AGENT_GET_STATS, [](U&) {});
  add(KF_AGENT_GET_IDENTITY, [](U&) {});
  return stream;
}

// The stream with its choices and their count at the end.
std::string Input(const std::string& stream, const std::string& choices) {
  return stream + choices + static_cast<char>(choices.size());
}

kf::fuzz::Seeds MakeSeeds() {
  const std::string every = EveryKind();
  // A header that is not a request's after a ping: BAD_FRAME, then the end.
  kf_agent_request ping{};
  ping.kind = KF_AGENT_PING;
  ping.u.ping.echo = 7;
  const std::string first = Frame(1, ping);
  std::string bad = first + Frame(2, ping);
  bad[first.size() + 8] = KF_AGENT_FRAME_RESPONSE;  // the second frame's type
  // The choices cycle: the first picks the table (bit 0: bare), then each
  // delivery reads one and each platform call its answer and values.
  using namespace std::string_literals;
  return {
      {"every-kind", Input(every, "")},
      {"every-kind-bare-bytewise", Input(every, "\x01"s)},
      {"every-kind-errors", Input(every, "\x00\x00\x03"s)},
      {"every-kind-pending", Input(every, "\x00\x00\x02"s)},
      {"every-kind-chunks", Input(every, "\x00\x81\x00\x07"s)},
      {"bad-frame", Input(bad, "")},
      {"truncated", Input(every.substr(0, every.size() / 2), "")},
  };
}

}  // namespace

KF_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t k = std::min<size_t>(data[size - 1], size - 1);
  const size_t stream_size = size - 1 - k;
  g_choices.Reset(data + stream_size, k);
  g_pending_in_a_row = 0;

  const kf_core_ops& ops = (g_choices.Byte() & 1) ? kBareOps : kLinuxOps;
  kf_core_init(&ops);
  CheckReadyFrame(ops);

  // The connection's input buffer holds [start, delivered) of the stream.
  size_t start = 0, delivered = 0;
  while (true) {
    // More bytes arrive: all (0), 1..127, or (c - 127) * 256 for c >= 128.
    const uint8_t c = g_choices.Byte();
    const size_t chunk = c == 0 ? stream_size : c < 128 ? c : (c - 127u) * 256u;
    const bool more = delivered < stream_size;
    delivered = std::min(stream_size, delivered + chunk);
    int status = KF_CORE_FRAME_NEED_MORE;
    while (delivered - start >= KF_AGENT_FRAME_HEADER_SIZE) {
      size_t consumed = 0;
      status = ServeOnce(ops, data + start, delivered - start, &consumed);
      if (status == KF_CORE_FRAME_BAD) return 0;  // the platform closes the connection
      if (status != KF_CORE_FRAME_SERVED) break;  // NEED_MORE, or PENDING: later
      start += consumed;
    }
    // Served again after the next delivery, or at once when nothing more
    // comes (the fake answers within kMaxPendingInARow tries).
    if (status == KF_CORE_FRAME_PENDING) continue;
    if (!more) return 0;  // every byte was there, and no whole frame is left
  }
}

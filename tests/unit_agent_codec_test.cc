// The agent's hand-written protobuf codec (agent/proto/) against libprotobuf:
// the same values must give the same bytes, libprotobuf's bytes must decode
// to the same values, and hostile bytes must never be read out of bounds.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "agent/core/core.h"
#include "agent/proto/agent_codec.h"
#include "agent/proto/agent_frame.h"
#include "tests/agent_codec_testlib.h"

namespace kf::testing {
namespace {

constexpr uint64_t kSeed = 20261129;
constexpr int kCases = 5000;
constexpr size_t kBuf = 64 * 1024;  // a CreateContainer at its caps is ~25 KiB

std::string EncodeC(const kf_agent_request& m) {
  std::vector<uint8_t> buf(kBuf);
  size_t n = 0;
  EXPECT_EQ(kf_agent_encode_request(&m, buf.data(), buf.size(), &n), KF_PB_OK);
  return std::string(reinterpret_cast<char*>(buf.data()), n);
}

std::string EncodeC(const kf_agent_response& m) {
  std::vector<uint8_t> buf(kBuf);
  size_t n = 0;
  EXPECT_EQ(kf_agent_encode_response(&m, buf.data(), buf.size(), &n), KF_PB_OK);
  return std::string(reinterpret_cast<char*>(buf.data()), n);
}

TEST(AgentCodec, RequestsEncodeAsLibprotobufDoesAndDecodeBack) {
  std::mt19937_64 rng(kSeed);
  FencedBuffer fenced(kBuf);
  for (int i = 0; i < kCases; ++i) {
    kf_agent_request m;
    RandomRequest(rng, &m);
    const std::string want = ToProto(m).SerializeAsString();
    ASSERT_EQ(EncodeC(m), want) << "case " << i << " seed " << kSeed << " kind " << m.kind;
    kf_agent_request back;
    ASSERT_EQ(kf_agent_decode_request(fenced.Put(want), want.size(), &back), KF_PB_OK)
        << "case " << i;
    ASSERT_EQ(back.kind, m.kind);
    ASSERT_EQ(ToProto(back).SerializeAsString(), want) << "case " << i;
  }
}

TEST(AgentCodec, ResponsesEncodeAsLibprotobufDoesAndDecodeBack) {
  std::mt19937_64 rng(kSeed + 1);
  FencedBuffer fenced(kBuf);
  for (int i = 0; i < kCases; ++i) {
    kf_agent_response m;
    RandomResponse(rng, &m);
    const std::string want = ToProto(m).SerializeAsString();
    ASSERT_EQ(EncodeC(m), want) << "case " << i << " seed " << kSeed + 1 << " kind " << m.kind;
    kf_agent_response back;
    ASSERT_EQ(kf_agent_decode_response(fenced.Put(want), want.size(), &back), KF_PB_OK)
        << "case " << i;
    ASSERT_EQ(ToProto(back).SerializeAsString(), want) << "case " << i;
  }
}

TEST(AgentCodec, UnknownFieldsAreSkipped) {
  pb::Request p;
  p.mutable_ping()->set_echo(42);
  std::string bytes = p.SerializeAsString();
  // Field 99 varint, field 100 length-delimited, field 101 fixed32, all unknown.
  bytes += std::string("\x98\x06\x07", 3) + std::string("\xa2\x06\x02xy", 5) +
           std::string("\xad\x06\x01\x02\x03\x04", 6);
  kf_agent_request back;
  ASSERT_EQ(kf_agent_decode_request(reinterpret_cast<const uint8_t*>(bytes.data()),
                                    bytes.size(), &back),
            KF_PB_OK);
  EXPECT_EQ(back.kind, static_cast<uint32_t>(KF_AGENT_PING));
  EXPECT_EQ(back.u.ping.echo, 42u);
}

// A bool as a varint other than 0 or 1 (libprotobuf never writes one, but
// reads any non-zero value as true): the C codec reads it the same way, not
// as its low 32 bits, and writes it back as 1. Found by tests/fuzz.
TEST(AgentCodec, NonCanonicalBoolsReadAsLibprotobufReadsThem) {
  // ReadStdout reply {eof = 2^32}: field 2, varint 80 80 80 80 10.
  const std::string bytes("\x82\x01\x06\x10\x80\x80\x80\x80\x10", 9);
  pb::Response p;
  ASSERT_TRUE(p.ParseFromString(bytes));
  ASSERT_TRUE(p.read_stdout().eof());
  const auto* in = reinterpret_cast<const uint8_t*>(bytes.data());
  kf_agent_response back;
  ASSERT_EQ(kf_agent_decode_response(in, bytes.size(), &back), KF_PB_OK);
  ASSERT_EQ(back.kind, static_cast<uint32_t>(KF_AGENT_READ_STDOUT));
  EXPECT_EQ(back.u.read_stream.eof, 1u);
  back.u.read_stream.eof = 7;  // any non-zero value is written as true
  EXPECT_EQ(EncodeC(back), p.SerializeAsString());
}

TEST(AgentCodec, EmptyPayloadHasNoBody) {
  kf_agent_request back;
  ASSERT_EQ(kf_agent_decode_request(nullptr, 0, &back), KF_PB_OK);
  EXPECT_EQ(back.kind, static_cast<uint32_t>(KF_AGENT_NONE));
  EXPECT_EQ(kf_agent_request_check(&back), KF_AGENT_ERR_UNKNOWN_REQUEST);
}

TEST(AgentCodec, OverlongFieldsAreRefused) {
  pb::Request p;
  p.mutable_set_identity()->set_sandbox_id(std::string(KF_AGENT_STR_MAX, 'a'));  // 64: one too many
  std::string bytes = p.SerializeAsString();
  kf_agent_request back;
  EXPECT_EQ(kf_agent_decode_request(reinterpret_cast<const uint8_t*>(bytes.data()),
                                    bytes.size(), &back),
            KF_PB_ERR_TOO_LONG);

  p.mutable_set_identity()->set_sandbox_id("id");
  p.mutable_set_identity()->set_entropy(std::string(KF_AGENT_ENTROPY_MAX + 1, 'e'));
  bytes = p.SerializeAsString();
  EXPECT_EQ(kf_agent_decode_request(reinterpret_cast<const uint8_t*>(bytes.data()),
                                    bytes.size(), &back),
            KF_PB_ERR_TOO_LONG);

  p.mutable_set_identity()->set_entropy(std::string(32, 'e'));
  p.mutable_set_identity()->set_hostname(std::string("a\0b", 3));
  bytes = p.SerializeAsString();
  EXPECT_EQ(kf_agent_decode_request(reinterpret_cast<const uint8_t*>(bytes.data()),
                                    bytes.size(), &back),
            KF_PB_ERR_BAD_STRING);
}

TEST(AgentCodec, RequestCheckEnforcesProtocolLimits) {
  kf_agent_request m{};
  m.kind = KF_AGENT_SET_IDENTITY;
  m.u.set_identity.entropy_len = KF_AGENT_ENTROPY_MIN - 1;
  EXPECT_EQ(kf_agent_request_check(&m), KF_AGENT_ERR_BAD_ARGUMENT);
  m.u.set_identity.entropy_len = KF_AGENT_ENTROPY_MIN;
  EXPECT_EQ(kf_agent_request_check(&m), 0);
  m = {};
  m.kind = KF_AGENT_RANDOM;
  m.u.random.bytes = KF_AGENT_RANDOM_MAX + 1;
  EXPECT_EQ(kf_agent_request_check(&m), KF_AGENT_ERR_BAD_ARGUMENT);
  m.u.random.bytes = KF_AGENT_RANDOM_MAX;
  EXPECT_EQ(kf_agent_request_check(&m), 0);
}

// Repeated fields: entries past a list's caps, or a NUL, do not decode.
TEST(AgentCodec, RepeatedFieldsHaveCaps) {
  auto decode = [](const pb::Request& p) {
    const std::string bytes = p.SerializeAsString();
    kf_agent_request back;
    return kf_agent_decode_request(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                   &back);
  };
  pb::Request p;
  auto* proc = p.mutable_create_container()->mutable_process();
  for (unsigned i = 0; i < KF_AGENT_ARGV_ENTRIES; ++i) proc->add_args("a");
  EXPECT_EQ(decode(p), KF_PB_OK);
  proc->add_args("one too many");
  EXPECT_EQ(decode(p), KF_PB_ERR_TOO_LONG);
  proc->clear_args();
  proc->add_args(std::string(KF_AGENT_STRV_ITEM_MAX, 'x'));
  EXPECT_EQ(decode(p), KF_PB_OK);
  proc->add_env(std::string(KF_AGENT_STRV_ITEM_MAX + 1, 'x'));
  EXPECT_EQ(decode(p), KF_PB_ERR_TOO_LONG);
  proc->clear_env();
  for (int i = 0; i < 2; ++i) proc->add_env(std::string(KF_AGENT_STRV_ITEM_MAX, 'e'));
  EXPECT_EQ(decode(p), KF_PB_OK);  // 8190 bytes of the 8192
  proc->add_env("X");              // needs 2 more
  EXPECT_EQ(decode(p), KF_PB_ERR_TOO_LONG);
  proc->clear_env();
  proc->add_env(std::string("A=\0b", 4));
  EXPECT_EQ(decode(p), KF_PB_ERR_BAD_STRING);
  proc->clear_env();
  for (unsigned i = 0; i < KF_AGENT_MOUNTS_MAX; ++i) p.mutable_create_container()->add_mounts();
  EXPECT_EQ(decode(p), KF_PB_OK);
  p.mutable_create_container()->add_mounts();
  EXPECT_EQ(decode(p), KF_PB_ERR_TOO_LONG);
  p.mutable_create_container()->clear_mounts();
  for (unsigned i = 0; i <= KF_AGENT_NAMESPACES_MAX; ++i)
    p.mutable_create_container()->add_namespaces("pid");
  EXPECT_EQ(decode(p), KF_PB_ERR_TOO_LONG);
}

// The largest CreateContainer the C structs can hold still fits one request
// frame the core accepts (and so the bare agent's 32 KiB receive buffers).
TEST(AgentCodec, LargestCreateContainerFitsARequestFrame) {
  pb::Request p;
  auto* c = p.mutable_create_container();
  c->set_container_id(std::string(KF_AGENT_ID_MAX - 1, 'c'));
  c->set_rootfs("/" + std::string(KF_AGENT_PATH_MAX - 2, 'r'));
  c->set_hostname(std::string(KF_AGENT_STR_MAX - 1, 'h'));
  auto* proc = c->mutable_process();
  for (unsigned i = 0; i < KF_AGENT_ARGV_ENTRIES; ++i) {
    proc->add_args(std::string(KF_AGENT_ARGV_BYTES / KF_AGENT_ARGV_ENTRIES - 1, 'a'));
    proc->add_env(std::string(KF_AGENT_ARGV_BYTES / KF_AGENT_ARGV_ENTRIES - 1, 'e'));
  }
  proc->set_cwd("/" + std::string(KF_AGENT_PATH_MAX - 2, 'w'));
  proc->set_uid(~0u);
  proc->set_gid(~0u);
  proc->set_terminal(true);
  for (unsigned i = 0; i < KF_AGENT_MOUNTS_MAX; ++i) {
    auto* m = c->add_mounts();
    m->set_destination("/" + std::string(KF_AGENT_PATH_MAX - 2, 'd'));
    m->set_type(std::string(KF_AGENT_FSTYPE_MAX - 1, 't'));
    m->set_source(std::string(KF_AGENT_PATH_MAX - 1, 's'));
    for (unsigned k = 0; k < KF_AGENT_OPTV_ENTRIES; ++k)
      m->add_options(std::string(KF_AGENT_OPTV_BYTES / KF_AGENT_OPTV_ENTRIES - 1, 'o'));
  }
  for (unsigned k = 0; k < KF_AGENT_NAMESPACES_MAX; ++k)
    c->add_namespaces(std::string(KF_AGENT_OPTV_BYTES / KF_AGENT_NAMESPACES_MAX - 1, 'n'));
  const std::string bytes = p.SerializeAsString();
  kf_agent_request back;
  ASSERT_EQ(kf_agent_decode_request(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                    &back),
            KF_PB_OK);
  EXPECT_EQ(back.u.create_container.process.args.count, KF_AGENT_ARGV_ENTRIES);
  EXPECT_EQ(back.u.create_container.process.args.used, KF_AGENT_ARGV_BYTES);
  EXPECT_LE(bytes.size(), KF_CORE_REQUEST_PAYLOAD_MAX) << bytes.size();
  std::printf("largest CreateContainer: %zu bytes (limit %u)\n", bytes.size(),
              KF_CORE_REQUEST_PAYLOAD_MAX);
}

TEST(AgentCodec, ContainerRequestChecks) {
  auto check = [](const pb::Request& p) {
    const std::string bytes = p.SerializeAsString();
    kf_agent_request m;
    EXPECT_EQ(kf_agent_decode_request(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                      &m),
              KF_PB_OK);
    const char* why = nullptr;
    int rc = kf_agent_request_check_why(&m, &why);
    EXPECT_NE(why, nullptr);
    return rc;
  };
  pb::Request p;
  auto* c = p.mutable_create_container();
  c->set_container_id("web-1");
  c->mutable_process()->add_args("/bin/echo");
  EXPECT_EQ(check(p), 0);
  c->set_container_id("");
  EXPECT_EQ(check(p), KF_AGENT_ERR_BAD_ARGUMENT);
  c->set_container_id("a/b");
  EXPECT_EQ(check(p), KF_AGENT_ERR_BAD_ARGUMENT);
  c->set_container_id("..");
  EXPECT_EQ(check(p), KF_AGENT_ERR_BAD_ARGUMENT);
  c->set_container_id("ok");
  c->set_rootfs("relative/root");
  EXPECT_EQ(check(p), KF_AGENT_ERR_BAD_ARGUMENT);
  c->set_rootfs("/rootfs");
  c->mutable_process()->clear_args();
  EXPECT_EQ(check(p), KF_AGENT_ERR_BAD_ARGUMENT);  // no program
  c->clear_process();
  EXPECT_EQ(check(p), KF_AGENT_ERR_BAD_ARGUMENT);
  c->mutable_process()->add_args("sh");
  c->mutable_process()->set_cwd("tmp");
  EXPECT_EQ(check(p), KF_AGENT_ERR_BAD_ARGUMENT);

  pb::Request e;
  e.mutable_exec_process()->set_container_id("ok");
  e.mutable_exec_process()->mutable_process()->add_args("ls");
  EXPECT_EQ(check(e), KF_AGENT_ERR_BAD_ARGUMENT);  // exec_id required
  e.mutable_exec_process()->set_exec_id("e1");
  EXPECT_EQ(check(e), 0);

  pb::Request s;
  s.mutable_signal_process()->set_container_id("ok");
  EXPECT_EQ(check(s), KF_AGENT_ERR_BAD_ARGUMENT);  // signal 0
  s.mutable_signal_process()->set_signal(9);
  EXPECT_EQ(check(s), 0);
  s.mutable_signal_process()->set_signal(65);
  EXPECT_EQ(check(s), KF_AGENT_ERR_BAD_ARGUMENT);

  pb::Request r;
  r.mutable_read_stdout()->set_container_id("ok");
  r.mutable_read_stdout()->set_max_bytes(KF_AGENT_STDIO_MAX);
  r.mutable_read_stdout()->set_wait_ms(KF_AGENT_WAIT_MAX_MS);
  EXPECT_EQ(check(r), 0);
  r.mutable_read_stdout()->set_max_bytes(KF_AGENT_STDIO_MAX + 1);
  EXPECT_EQ(check(r), KF_AGENT_ERR_BAD_ARGUMENT);
  pb::Request w;
  w.mutable_wait_process()->set_container_id("ok");
  w.mutable_wait_process()->set_timeout_ms(KF_AGENT_WAIT_MAX_MS + 1);
  EXPECT_EQ(check(w), KF_AGENT_ERR_BAD_ARGUMENT);
}

TEST(AgentCodec, EncoderReportsNoSpaceAndSizingWorks) {
  kf_agent_response m{};
  m.kind = KF_AGENT_RANDOM;
  m.u.random.len = 100;
  uint8_t small[50];
  size_t n = 0;
  EXPECT_EQ(kf_agent_encode_response(&m, small, sizeof small, &n), KF_PB_ERR_NO_SPACE);
  m.kind = KF_AGENT_KIND_LIMIT;  // not a kind
  uint8_t big[256];
  EXPECT_EQ(kf_agent_encode_response(&m, big, sizeof big, &n), KF_PB_ERR_BAD_VALUE);
}

// Every prefix of a valid message, and random bytes: decoding returns a
// status and never reads past the end (the fenced page would fault).
TEST(AgentCodec, TruncatedAndRandomInputNeverReadsOutOfBounds) {
  std::mt19937_64 rng(kSeed + 2);
  FencedBuffer fenced(kBuf);
  int errors = 0;
  for (int i = 0; i < 400; ++i) {
    kf_agent_response m;
    RandomResponse(rng, &m);
    const std::string full = ToProto(m).SerializeAsString();
    for (size_t cut = 0; cut < full.size(); cut += 1 + full.size() / 64) {
      kf_agent_response back;
      std::string prefix = full.substr(0, cut);
      if (kf_agent_decode_response(fenced.Put(prefix), prefix.size(), &back) != KF_PB_OK)
        ++errors;
    }
  }
  EXPECT_GT(errors, 0);  // truncation inside a field is detected
  for (int i = 0; i < 20000; ++i) {
    std::string junk(rng() % 96, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    kf_agent_request req;
    kf_agent_response resp;
    const int a = kf_agent_decode_request(fenced.Put(junk), junk.size(), &req);
    const int b = kf_agent_decode_response(fenced.Put(junk), junk.size(), &resp);
    ASSERT_LE(a, 0);
    ASSERT_LE(b, 0);
    if (a == KF_PB_OK) {
      ASSERT_LT(req.kind, static_cast<uint32_t>(KF_AGENT_KIND_LIMIT));
    }
  }
}

TEST(AgentFrame, HeaderRoundTripAndValidation) {
  kf_agent_frame_header h{1234, 0xdeadbeef, KF_AGENT_FRAME_RESPONSE, 0};
  uint8_t raw[KF_AGENT_FRAME_HEADER_SIZE];
  ASSERT_EQ(kf_agent_frame_header_encode(&h, raw), KF_PB_OK);
  const uint8_t want[] = {0, 0, 0x04, 0xd2, 0xde, 0xad, 0xbe, 0xef, 2, 0};  // big-endian
  EXPECT_EQ(std::memcmp(raw, want, sizeof want), 0);
  kf_agent_frame_header back{};
  ASSERT_EQ(kf_agent_frame_header_decode(raw, &back), KF_PB_OK);
  EXPECT_EQ(back.length, 1234u);
  EXPECT_EQ(back.stream_id, 0xdeadbeefu);
  EXPECT_EQ(back.type, KF_AGENT_FRAME_RESPONSE);

  uint8_t bad[KF_AGENT_FRAME_HEADER_SIZE];
  std::memcpy(bad, raw, sizeof bad);
  bad[0] = 0x01;  // 16 MiB payload: over the cap
  EXPECT_EQ(kf_agent_frame_header_decode(bad, &back), KF_PB_ERR_FRAME_LENGTH);
  std::memcpy(bad, raw, sizeof bad);
  bad[8] = 3;
  EXPECT_EQ(kf_agent_frame_header_decode(bad, &back), KF_PB_ERR_FRAME_TYPE);
  std::memcpy(bad, raw, sizeof bad);
  bad[9] = 1;
  EXPECT_EQ(kf_agent_frame_header_decode(bad, &back), KF_PB_ERR_FRAME_FLAGS);
  h.type = 0;
  EXPECT_NE(kf_agent_frame_header_encode(&h, raw), KF_PB_OK);
}

}  // namespace
}  // namespace kf::testing

// The agent's hand-written protobuf codec (agent/proto/) against libprotobuf:
// the same values must give the same bytes, libprotobuf's bytes must decode
// to the same values, and hostile bytes must never be read out of bounds.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "agent/proto/agent_codec.h"
#include "agent/proto/agent_frame.h"
#include "tests/agent_codec_testlib.h"

namespace kf::testing {
namespace {

constexpr uint64_t kSeed = 20261129;
constexpr int kCases = 5000;
constexpr size_t kBuf = 16 * 1024;

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

TEST(AgentCodec, EncoderReportsNoSpaceAndSizingWorks) {
  kf_agent_response m{};
  m.kind = KF_AGENT_RANDOM;
  m.u.random.len = 100;
  uint8_t small[50];
  size_t n = 0;
  EXPECT_EQ(kf_agent_encode_response(&m, small, sizeof small, &n), KF_PB_ERR_NO_SPACE);
  m.kind = 9;  // not a kind
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
      ASSERT_LE(req.kind, 15u);
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

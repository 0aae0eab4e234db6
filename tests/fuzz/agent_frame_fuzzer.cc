// libFuzzer target: the agent protocol's frame header and protobuf codec
// (agent/proto/agent_frame.h, agent_codec.h), freestanding C that the guest
// agent runs on the host's requests and the host runs on the guest's
// responses: both directions read bytes a peer controls.
//
// Feeds: the input as a stream of frames, each header followed by up to its
// length of payload; a request frame's payload goes to the request decoder,
// a response frame's to the response decoder, each copied into a buffer of
// exactly its size so ASan sees a read past the end. The stream ends at the
// first bad header, as the agent's does.
// Checks: a valid header encodes back to the same 10 bytes; a message the
// decoder accepted passes kf_agent_request_check or gives a reason, encodes
// to what libprotobuf writes for the same values (as agent_codec.h promises)
// and decodes back to them; and where libprotobuf parses the same payload,
// it reads the same values (unknown fields aside).
#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "agent/proto/agent_codec.h"
#include "agent/proto/agent_frame.h"
#include "tests/agent_codec_testlib.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

namespace pb = kf::testing::pb;

constexpr size_t kEncodeBuf = 64 * 1024;  // a CreateContainer at its caps is ~25 KiB

// The request and response paths differ only in types and functions.
template <typename Msg, typename Proto>
struct Codec {
  int (*decode)(const uint8_t*, size_t, Msg*);
  int (*encode)(const Msg*, uint8_t*, size_t, size_t*);
  const char* what;
};
constexpr Codec<kf_agent_request, pb::Request> kRequests{kf_agent_decode_request,
                                                         kf_agent_encode_request, "request"};
constexpr Codec<kf_agent_response, pb::Response> kResponses{kf_agent_decode_response,
                                                            kf_agent_encode_response, "response"};

// The message structs are large (a CreateContainer is ~25 KiB): static,
// zeroed before each use.
kf_agent_request g_request, g_request_again;
kf_agent_response g_response, g_response_again;

size_t FirstDifference(const std::string& a, const std::string& b) {
  return static_cast<size_t>(std::mismatch(a.begin(), a.end(), b.begin(), b.end()).first -
                             a.begin());
}

void CheckRequest(const kf_agent_request& m) {
  const char* why = nullptr;
  const int rc = kf_agent_request_check_why(&m, &why);
  KF_FUZZ_CHECK(rc == kf_agent_request_check(&m), "the two request checks disagree");
  KF_FUZZ_CHECK(rc == 0 || (why != nullptr && why[0] != '\0'), "check %d without a reason", rc);
}
void CheckRequest(const kf_agent_response&) {}  // responses have no such check

template <typename Msg, typename Proto>
void DecodePayload(const Codec<Msg, Proto>& c, const std::vector<uint8_t>& payload, Msg* m,
                   Msg* again) {
  std::memset(m, 0, sizeof *m);
  if (c.decode(payload.data(), payload.size(), m) != KF_PB_OK) {
    KF_FUZZ_CHECK(m->kind == KF_AGENT_NONE, "a failed %s decode left kind %u", c.what, m->kind);
    return;
  }
  KF_FUZZ_CHECK(m->kind < KF_AGENT_KIND_LIMIT, "%s kind %u", c.what, m->kind);
  if (m->kind == KF_AGENT_NONE) return;  // nothing known in it: UNKNOWN_REQUEST
  CheckRequest(*m);

  std::vector<uint8_t> buf(kEncodeBuf);
  size_t n = 0;
  const int rc = c.encode(m, buf.data(), buf.size(), &n);
  KF_FUZZ_CHECK(rc == KF_PB_OK, "a decoded %s of kind %u does not encode: %s", c.what, m->kind,
                kf_pb_strerror(rc));
  const std::string encoded(reinterpret_cast<const char*>(buf.data()), n);
  const std::string canonical = kf::testing::ToProto(*m).SerializeAsString();
  KF_FUZZ_CHECK(encoded == canonical,
                "%s of kind %u encodes to %zu bytes, libprotobuf writes %zu for the same values; "
                "first difference at byte %zu",
                c.what, m->kind, encoded.size(), canonical.size(),
                FirstDifference(encoded, canonical));

  std::memset(again, 0, sizeof *again);
  KF_FUZZ_CHECK(c.decode(buf.data(), n, again) == KF_PB_OK, "a re-encoded %s does not decode",
                c.what);
  KF_FUZZ_CHECK(kf::testing::ToProto(*again).SerializeAsString() == canonical,
                "a %s of kind %u changed in an encode/decode round trip", c.what, m->kind);

  // libprotobuf on the original bytes. It refuses some that the C codec
  // takes (strings that are not UTF-8: C strings are bytes); when it parses
  // them, both must have read the same values.
  Proto reference;
  if (reference.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    reference.DiscardUnknownFields();
    KF_FUZZ_CHECK(reference.SerializeAsString() == canonical,
                  "libprotobuf reads the %s payload (kind %u) differently", c.what, m->kind);
  }
}

std::string Frame(uint8_t type, uint32_t stream, const std::string& payload) {
  kf_agent_frame_header h{static_cast<uint32_t>(payload.size()), stream, type, 0};
  uint8_t raw[KF_AGENT_FRAME_HEADER_SIZE];
  if (kf_agent_frame_header_encode(&h, raw) != KF_PB_OK) std::abort();
  return std::string(reinterpret_cast<char*>(raw), sizeof raw) + payload;
}

// Adds `m` as a frame unless a seed of its kind is there or it is over 4 KiB.
template <typename Msg>
void AddSeed(const Msg& m, uint8_t type, uint32_t stream, std::vector<bool>& have,
             kf::fuzz::Seeds& seeds) {
  const std::string payload = kf::testing::ToProto(m).SerializeAsString();
  if (have[m.kind] || payload.size() > 4096) return;
  have[m.kind] = true;
  const char* what = type == KF_AGENT_FRAME_REQUEST ? "request-" : "response-";
  seeds.push_back({what + std::to_string(m.kind), Frame(type, stream, payload)});
}

// One request and one response frame of every kind, random values from a
// fixed seed (tests/agent_codec_testlib.h), those over 4 KiB left out; and
// a stream of two frames.
kf::fuzz::Seeds MakeSeeds() {
  kf::fuzz::Seeds seeds;
  std::mt19937_64 rng(8);
  std::vector<bool> have_req(KF_AGENT_KIND_LIMIT), have_resp(KF_AGENT_KIND_LIMIT);
  for (uint32_t i = 1; i <= 5000; ++i) {
    kf::testing::RandomRequest(rng, &g_request);
    AddSeed(g_request, KF_AGENT_FRAME_REQUEST, i, have_req, seeds);
    kf::testing::RandomResponse(rng, &g_response);
    AddSeed(g_response, KF_AGENT_FRAME_RESPONSE, i, have_resp, seeds);
  }
  std::string stream;
  for (const auto& [name, bytes] : seeds) {
    if (name == "response-" + std::to_string(KF_AGENT_READY)) stream = bytes + stream;
    if (name == "request-" + std::to_string(KF_AGENT_PING)) stream += bytes;
  }
  seeds.push_back({"stream-ready-ping", stream});
  return seeds;
}

}  // namespace

KF_FUZZ_SEEDS(MakeSeeds)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kf::fuzz::Reader in(data, size);
  while (in.left() >= KF_AGENT_FRAME_HEADER_SIZE) {
    const auto raw = in.Bytes(KF_AGENT_FRAME_HEADER_SIZE);
    kf_agent_frame_header h;
    const int rc = kf_agent_frame_header_decode(raw.data(), &h);
    uint8_t back[KF_AGENT_FRAME_HEADER_SIZE];
    KF_FUZZ_CHECK(kf_agent_frame_header_encode(&h, back) == rc,
                  "a header decodes with %d but encodes with another status", rc);
    if (rc != KF_PB_OK) break;
    KF_FUZZ_CHECK(std::memcmp(back, raw.data(), sizeof back) == 0,
                  "a valid header does not encode back to its bytes");
    const auto body = in.Bytes(h.length);
    const std::vector<uint8_t> payload(body.begin(), body.end());  // exactly sized
    if (h.type == KF_AGENT_FRAME_REQUEST) {
      DecodePayload(kRequests, payload, &g_request, &g_request_again);
    } else {
      DecodePayload(kResponses, payload, &g_response, &g_response_again);
    }
  }
  return 0;
}

// Test helpers for the agent codec: seeded random C messages, their
// libprotobuf twins, and input buffers fenced by inaccessible pages so a read
// past the end faults without needing ASan.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>

#include "agent/proto/agent_codec.h"
#include "proto/agent.pb.h"

namespace kf::testing {

namespace pb = katafactory::agent::v1;

// A random value of random bit width (0 and 2^64-1 included), so varints of
// every length 1..10 appear.
uint64_t RandomU64(std::mt19937_64& rng);

// Zeroed (padding included), then filled with random values of a random kind.
void RandomRequest(std::mt19937_64& rng, kf_agent_request* m);
void RandomResponse(std::mt19937_64& rng, kf_agent_response* m);

// The same values as libprotobuf messages. Written field by field from the
// generated classes, so they check the codec's tables against agent.proto.
pb::Request ToProto(const kf_agent_request& m);
pb::Response ToProto(const kf_agent_response& m);

// A readable region of `capacity` bytes between two PROT_NONE pages. Put()
// copies bytes to its very end, so any read past them (or before the region)
// is a SIGSEGV: bounds checked without ASan. Reused across cases: one mmap.
class FencedBuffer {
 public:
  explicit FencedBuffer(size_t capacity);
  ~FencedBuffer();
  FencedBuffer(const FencedBuffer&) = delete;
  FencedBuffer& operator=(const FencedBuffer&) = delete;

  // Where the copy starts; valid until the next Put(). bytes <= capacity.
  const uint8_t* Put(const std::string& bytes);

 private:
  uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  uint8_t* end_ = nullptr;  // one past the last readable byte
  size_t capacity_ = 0;
};

}  // namespace kf::testing

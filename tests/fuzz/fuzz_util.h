// Shared by the libFuzzer targets in tests/fuzz (README.md there): a check
// that turns a broken promise into a crash libFuzzer keeps, a little-endian
// reader over the input, and the seed writer behind `scripts/fuzz
// --make-seeds`.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <span>
#include <string>
#include <utility>
#include <vector>

// A finding that no sanitizer would see (e.g. a round trip that changed the
// message): prints what failed and aborts, which libFuzzer reports as a
// crash with its input saved.
#define KF_FUZZ_CHECK(cond, ...)                                                            \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "%s:%d: KF_FUZZ_CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                                    \
      std::fputc('\n', stderr);                                                             \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

namespace kf::fuzz {

// Reads the input front to back; past its end every value reads as 0 and
// every byte span is empty, so a short input is just a simple one.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), left_(size) {}

  template <typename T>
  T Take() {
    T v{};
    if (left_ >= sizeof(T)) {
      std::memcpy(&v, p_, sizeof(T));  // the host is little endian
      p_ += sizeof(T);
      left_ -= sizeof(T);
    } else {
      left_ = 0;
    }
    return v;
  }
  // Up to n bytes.
  std::span<const uint8_t> Bytes(size_t n) {
    n = n < left_ ? n : left_;
    std::span<const uint8_t> out(p_, n);
    p_ += n;
    left_ -= n;
    return out;
  }
  size_t left() const { return left_; }

 private:
  const uint8_t* p_;
  size_t left_;
};

// Appends v's bytes (little endian), for building seeds.
template <typename T>
void Put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

using Seeds = std::vector<std::pair<std::string, std::string>>;  // file name, bytes

// With KF_FUZZ_WRITE_SEEDS=<dir> in the environment, writes each seed to
// <dir>/<name> and exits; otherwise does nothing. Each target owns its input
// format, so it makes its own seeds: KF_FUZZ_SEEDS(MakeSeeds) at file scope
// calls this from LLVMFuzzerInitialize.
inline void WriteSeedsIfAsked(Seeds (*make)()) {
  const char* dir = std::getenv("KF_FUZZ_WRITE_SEEDS");
  if (dir == nullptr) return;
  for (const auto& [name, bytes] : make()) {
    const std::string path = std::string(dir) + "/" + name;
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      std::exit(1);
    }
  }
  std::exit(0);
}

}  // namespace kf::fuzz

#define KF_FUZZ_SEEDS(make)                            \
  extern "C" int LLVMFuzzerInitialize(int*, char***) { \
    kf::fuzz::WriteSeedsIfAsked(make);                 \
    return 0;                                          \
  }

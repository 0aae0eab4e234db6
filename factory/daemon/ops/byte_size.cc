#include "factory/daemon/ops/byte_size.h"

#include <cctype>
#include <limits>

namespace kf::ops {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

Result<uint64_t> ParseByteSize(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Error("bad size \"" + std::string(text) + "\": " + why +
                 " (want bytes or a number with K, M, G or T, e.g. \"2G\")");
  };
  size_t i = 0;
  uint64_t n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    uint64_t d = static_cast<uint64_t>(text[i] - '0');
    if (n > (std::numeric_limits<uint64_t>::max() - d) / 10) return bad("too large");
    n = n * 10 + d;
    ++i;
  }
  if (i == 0) return bad("no number");
  std::string suffix = Lower(text.substr(i));
  int shift = 0;
  if (!suffix.empty()) {
    switch (suffix[0]) {
      case 'k':
        shift = 10;
        break;
      case 'm':
        shift = 20;
        break;
      case 'g':
        shift = 30;
        break;
      case 't':
        shift = 40;
        break;
      case 'b':
        shift = 0;
        break;
      default:
        return bad("unknown unit");
    }
    std::string rest = suffix.substr(1);
    bool ok = suffix[0] == 'b' ? rest.empty()
                               : (rest.empty() || rest == "i" || rest == "ib" || rest == "b");
    if (!ok) return bad("unknown unit");
  }
  if (shift > 0 && n > (std::numeric_limits<uint64_t>::max() >> shift)) return bad("too large");
  return n << shift;
}

std::string FormatByteSize(uint64_t bytes) {
  static constexpr struct {
    int shift;
    char unit;
  } kUnits[] = {{40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}};
  if (bytes == 0) return "0";
  for (const auto& u : kUnits) {
    uint64_t mask = (uint64_t{1} << u.shift) - 1;
    if ((bytes & mask) == 0) return std::to_string(bytes >> u.shift) + u.unit;
  }
  return std::to_string(bytes);
}

}  // namespace kf::ops

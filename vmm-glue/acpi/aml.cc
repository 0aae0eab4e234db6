#include "vmm-glue/acpi/aml.h"

#include <string>

namespace kf::acpi::aml {
namespace {

// Opcodes (ACPI 6.x, 20.3 "AML Byte Stream Byte Values").
constexpr uint8_t kZeroOp = 0x00;
constexpr uint8_t kOneOp = 0x01;
constexpr uint8_t kNameOp = 0x08;
constexpr uint8_t kBytePrefix = 0x0A;
constexpr uint8_t kWordPrefix = 0x0B;
constexpr uint8_t kDWordPrefix = 0x0C;
constexpr uint8_t kStringPrefix = 0x0D;
constexpr uint8_t kQWordPrefix = 0x0E;
constexpr uint8_t kScopeOp = 0x10;
constexpr uint8_t kBufferOp = 0x11;
constexpr uint8_t kDualNamePrefix = 0x2E;
constexpr uint8_t kMultiNamePrefix = 0x2F;
constexpr uint8_t kExtOpPrefix = 0x5B;
constexpr uint8_t kDeviceOp = 0x82;  // after kExtOpPrefix
constexpr uint8_t kRootChar = '\\';
constexpr uint8_t kParentPrefixChar = '^';

// Resource descriptor tags (6.4): large items carry a 16-bit length.
constexpr uint8_t kMemory32FixedTag = 0x86;
constexpr uint8_t kExtendedInterruptTag = 0x89;
constexpr uint8_t kIoPortTag = 0x47;  // small item 0x08, 7 bytes follow
constexpr uint8_t kEndTag = 0x79;     // small item 0x0F, 1 byte follows

Status AppendNameSeg(Bytes& out, std::string_view seg, std::string_view path) {
  if (seg.empty() || seg.size() > 4)
    return Error("AML name \"" + std::string(path) + "\": segment \"" + std::string(seg) +
                 "\" must be 1-4 characters");
  for (size_t i = 0; i < seg.size(); ++i) {
    char c = seg[i];
    bool ok = (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok)
      return Error("AML name \"" + std::string(path) + "\": bad character in segment \"" +
                   std::string(seg) + "\"");
  }
  out.insert(out.end(), seg.begin(), seg.end());
  out.insert(out.end(), 4 - seg.size(), '_');
  return Status::Ok();
}

// opcode(s) PkgLength payload.
Result<Bytes> WithPkgLength(std::initializer_list<uint8_t> opcode, const Bytes& payload) {
  ASSIGN_OR_RETURN(Bytes len, PkgLength(payload.size()));
  Bytes out(opcode);
  out.insert(out.end(), len.begin(), len.end());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

Result<Bytes> Concat(Result<Bytes> a, const Bytes& b) {
  if (!a.ok()) return a;
  a->insert(a->end(), b.begin(), b.end());
  return a;
}

}  // namespace

Result<Bytes> PkgLength(size_t payload_len) {
  if (payload_len + 1 <= 0x3F) return Bytes{static_cast<uint8_t>(payload_len + 1)};
  // Multi-byte form: bits 7-6 of the lead byte count the bytes that follow,
  // its bits 3-0 hold the low nibble, each following byte 8 more bits.
  for (size_t n = 2; n <= 4; ++n) {
    size_t total = payload_len + n;
    if (total < (size_t{1} << (4 + 8 * (n - 1)))) {
      Bytes out{static_cast<uint8_t>(((n - 1) << 6) | (total & 0x0F))};
      for (size_t i = 1; i < n; ++i)
        out.push_back(static_cast<uint8_t>(total >> (4 + 8 * (i - 1))));
      return out;
    }
  }
  return Error("AML package of " + std::to_string(payload_len) + " bytes is over 2^28");
}

Result<Bytes> NameString(std::string_view path) {
  Bytes out;
  std::string_view rest = path;
  if (!rest.empty() && rest[0] == '\\') {
    out.push_back(kRootChar);
    rest.remove_prefix(1);
  } else {
    while (!rest.empty() && rest[0] == '^') {
      out.push_back(kParentPrefixChar);
      rest.remove_prefix(1);
    }
  }
  std::vector<std::string_view> segs;
  while (!rest.empty()) {
    size_t dot = rest.find('.');
    segs.push_back(rest.substr(0, dot));
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
    if (rest.empty()) segs.push_back(rest);  // trailing dot: an empty segment
  }
  if (segs.empty()) {
    // NullName: only meaningful after a prefix ("\\" is the root itself).
    if (out.empty()) return Error("AML name is empty");
    out.push_back(0x00);
    return out;
  }
  if (segs.size() > 255) return Error("AML name \"" + std::string(path) + "\" is too deep");
  if (segs.size() == 2) {
    out.push_back(kDualNamePrefix);
  } else if (segs.size() > 2) {
    out.push_back(kMultiNamePrefix);
    out.push_back(static_cast<uint8_t>(segs.size()));
  }
  for (std::string_view seg : segs) RETURN_IF_ERROR(AppendNameSeg(out, seg, path));
  return out;
}

Bytes Integer(uint64_t value) {
  if (value == 0) return {kZeroOp};
  if (value == 1) return {kOneOp};
  Bytes out;
  int width;
  if (value <= 0xFF) {
    out.push_back(kBytePrefix), width = 1;
  } else if (value <= 0xFFFF) {
    out.push_back(kWordPrefix), width = 2;
  } else if (value <= 0xFFFFFFFF) {
    out.push_back(kDWordPrefix), width = 4;
  } else {
    out.push_back(kQWordPrefix), width = 8;
  }
  for (int i = 0; i < width; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
  return out;
}

Result<Bytes> String(std::string_view s) {
  Bytes out{kStringPrefix};
  for (char c : s) {
    auto b = static_cast<uint8_t>(c);
    if (b == 0 || b > 0x7F) return Error("AML string \"" + std::string(s) + "\" is not ASCII");
    out.push_back(b);
  }
  out.push_back(0x00);
  return out;
}

Result<Bytes> EisaId(std::string_view id) {
  auto bad = [&] { return Error("EISAID \"" + std::string(id) + "\" is not AAA#### (hex)"); };
  if (id.size() != 7) return bad();
  uint32_t v = 0;
  for (size_t i = 0; i < 3; ++i) {
    if (id[i] < 'A' || id[i] > 'Z') return bad();
    v = (v << 5) | static_cast<uint32_t>(id[i] - 0x40);  // 'A' = 1
  }
  for (size_t i = 3; i < 7; ++i) {
    char c = id[i];
    uint32_t d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return bad();
    }
    v = (v << 4) | d;
  }
  // v holds the 32-bit ID with the letters in its top 15 bits; EISA stores
  // it big-endian, so the DWord AML sees is v byte-swapped.
  uint32_t swapped = ((v & 0xFF) << 24) | ((v & 0xFF00) << 8) | ((v >> 8) & 0xFF00) | (v >> 24);
  Bytes out{kDWordPrefix};
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(swapped >> (8 * i)));
  return out;
}

Result<Bytes> Name(std::string_view name, const Bytes& object) {
  ASSIGN_OR_RETURN(Bytes out, Concat(NameString(name), object));
  out.insert(out.begin(), kNameOp);
  return out;
}

Result<Bytes> Scope(std::string_view path, const Bytes& body) {
  ASSIGN_OR_RETURN(Bytes payload, Concat(NameString(path), body));
  return WithPkgLength({kScopeOp}, payload);
}

Result<Bytes> Device(std::string_view name, const Bytes& body) {
  ASSIGN_OR_RETURN(Bytes payload, Concat(NameString(name), body));
  return WithPkgLength({kExtOpPrefix, kDeviceOp}, payload);
}

Bytes Memory32Fixed(bool read_write, uint32_t base, uint32_t length) {
  Bytes out{kMemory32FixedTag};
  Put16(out, 9);  // bytes after the 3-byte header
  Put8(out, read_write ? 1 : 0);
  Put32(out, base);
  Put32(out, length);
  return out;
}

Bytes IoPort(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length) {
  Bytes out{kIoPortTag};
  Put8(out, 1);  // decodes 16 address lines (Decode16)
  Put16(out, min);
  Put16(out, max);
  Put8(out, alignment);
  Put8(out, length);
  return out;
}

Bytes ExtendedInterrupt(InterruptFlags flags, uint32_t gsi) {
  Bytes out{kExtendedInterruptTag};
  Put16(out, 6);  // flags, count, one DWord; no ResourceSource
  Put8(out, static_cast<uint8_t>((flags.consumer ? 1 : 0) | (flags.edge ? 2 : 0) |
                                 (flags.active_low ? 4 : 0) | (flags.shared ? 8 : 0)));
  Put8(out, 1);
  Put32(out, gsi);
  return out;
}

Result<Bytes> ResourceTemplate(const std::vector<Bytes>& descriptors) {
  Bytes data;
  for (const Bytes& d : descriptors) data.insert(data.end(), d.begin(), d.end());
  data.push_back(kEndTag);
  data.push_back(0);                     // checksum 0: "treat as valid" (6.4.2.9)
  Bytes payload = Integer(data.size());  // BufferSize
  payload.insert(payload.end(), data.begin(), data.end());
  return WithPkgLength({kBufferOp}, payload);
}

}  // namespace kf::acpi::aml

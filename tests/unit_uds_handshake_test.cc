// The hybrid-vsock CONNECT line parser: good lines whole and in pieces, and
// every class of bad line, each refused with a message that names it.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "vmm-glue/vsock/uds_handshake.h"

namespace {

using kf::vsock::ConnectLineParser;
using kf::vsock::FormatConnectReply;

// Feeds `line` in one piece and expects the port, with `tail` left over.
void ExpectPort(const std::string& line, uint32_t port, const std::string& tail = "") {
  ConnectLineParser p;
  auto r = p.Feed(line + tail);
  ASSERT_TRUE(r.ok()) << line << ": " << r.error().message();
  ASSERT_TRUE(r->has_value()) << line;
  EXPECT_EQ((*r)->port, port) << line;
  EXPECT_EQ((*r)->consumed, line.size()) << line;
}

// Feeds `line` byte by byte; expects an error whose message has `needle`.
void ExpectError(const std::string& line, const std::string& needle) {
  ConnectLineParser p;
  for (char c : line) {
    auto r = p.Feed(std::string_view(&c, 1));
    if (!r.ok()) {
      EXPECT_NE(r.error().message().find(needle), std::string::npos)
          << "line " << ::testing::PrintToString(line) << ": " << r.error().message();
      return;
    }
    ASSERT_FALSE(r->has_value()) << "accepted " << ::testing::PrintToString(line);
  }
  ADD_FAILURE() << "no error for " << ::testing::PrintToString(line);
}

TEST(UdsHandshake, GoodLines) {
  ExpectPort("CONNECT 1024\n", 1024);
  ExpectPort("CONNECT 0\n", 0);
  ExpectPort("CONNECT 52\n", 52);
  ExpectPort("CONNECT 4294967295\n", 4294967295u);
  ExpectPort("CONNECT 0000000001024\n", 1024);  // leading zeros are digits
}

TEST(UdsHandshake, BytesAfterTheNewlineAreLeftToTheStream) {
  ExpectPort("CONNECT 1024\n", 1024, std::string("\x00\x00\x00\x05payload", 11));
  ExpectPort("CONNECT 7\n", 7, "CONNECT 8\n");  // a second line is payload too
}

TEST(UdsHandshake, SplitDeliveryByteByByte) {
  const std::string line = "CONNECT 65535\n";
  ConnectLineParser p;
  for (size_t i = 0; i + 1 < line.size(); ++i) {
    auto r = p.Feed(line.substr(i, 1));
    ASSERT_TRUE(r.ok()) << r.error().message();
    ASSERT_FALSE(r->has_value()) << "complete early at byte " << i;
  }
  auto r = p.Feed("\nrest");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->port, 65535u);
  EXPECT_EQ((*r)->consumed, 1u);  // of this last piece
}

TEST(UdsHandshake, EverySplitPointGivesTheSameAnswer) {
  const std::string input = "CONNECT 123456\nxyz";
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    ConnectLineParser p;
    auto first = p.Feed(input.substr(0, cut));
    ASSERT_TRUE(first.ok());
    if (first->has_value()) {
      EXPECT_EQ((*first)->consumed, 15u);
      continue;
    }
    auto second = p.Feed(input.substr(cut));
    ASSERT_TRUE(second.ok() && second->has_value()) << "cut " << cut;
    EXPECT_EQ((*second)->port, 123456u);
    EXPECT_EQ(cut + (*second)->consumed, 15u);
  }
}

TEST(UdsHandshake, LineTooLong) {
  ExpectError("CONNECT " + std::string(40, '0') + "1\n", "longer than 32");
  // 32 bytes without the '\n' can never become a valid line: refused at the
  // 32nd byte, not left waiting for a 33rd (found by tests/fuzz).
  ExpectError("CONNECT " + std::string(23, '0') + "1", "longer than 32");
  // Exactly at the cap is still fine.
  ExpectPort("CONNECT " + std::string(22, '0') + "9\n", 9);
}

TEST(UdsHandshake, WrongVerb) {
  ExpectError("connect 1024\n", "wrong verb");
  ExpectError("CONNECTX 1024\n", "wrong verb");
  ExpectError("CONNEC 1024\n", "wrong verb");
  ExpectError("GET / HTTP/1.1\r\n", "wrong verb: 'G' at byte 0");
  ExpectError("\n", "wrong verb");
  // "\x00" "C": one literal would read \x00C as a single hex escape.
  ExpectError(std::string("\x00" "CONNECT 1\n", 11), "\\x00");
}

TEST(UdsHandshake, Spaces) {
  ExpectError("CONNECT  1024\n", "extra space before port");
  ExpectError("CONNECT 1024 \n", "extra space after port");
  ExpectError("CONNECT 10 24\n", "extra space after port");
  ExpectError(" CONNECT 1024\n", "wrong verb");
  ExpectError("CONNECT\n", "missing port");
  ExpectError("CONNECT \n", "missing port");
  ExpectError("CONNECT\t1024\n", "wrong verb");
}

TEST(UdsHandshake, NonDigits) {
  ExpectError("CONNECT 10a4\n", "non-digit 'a'");
  ExpectError("CONNECT -1\n", "non-digit '-'");
  ExpectError("CONNECT +1\n", "non-digit '+'");
  ExpectError("CONNECT 0x10\n", "non-digit 'x'");
  ExpectError("CONNECT 1024\r\n", "non-digit \\x0d");
}

TEST(UdsHandshake, PortOutOfRange) {
  ExpectError("CONNECT 4294967296\n", "out of range");
  ExpectError("CONNECT 99999999999\n", "out of range");
  ExpectError("CONNECT 18446744073709551617\n", "out of range");  // would wrap a u64
}

TEST(UdsHandshake, DoneAfterAnAnswer) {
  ConnectLineParser ok;
  ASSERT_TRUE(ok.Feed("CONNECT 1\n").ok());
  EXPECT_FALSE(ok.Feed("CONNECT 2\n").ok());
  ConnectLineParser bad;
  EXPECT_FALSE(bad.Feed("X").ok());
  auto again = bad.Feed("CONNECT 2\n");
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message().find("already finished"), std::string::npos);
}

TEST(UdsHandshake, EmptyFeedNeedsMore) {
  ConnectLineParser p;
  auto r = p.Feed("");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
}

TEST(UdsHandshake, Reply) {
  EXPECT_EQ(FormatConnectReply(1073741824u), "OK 1073741824\n");
  EXPECT_EQ(FormatConnectReply(0), "OK 0\n");
  EXPECT_EQ(FormatConnectReply(4294967295u), "OK 4294967295\n");
}

}  // namespace

// The requester side of the sandbox control channel against a peer that
// misbehaves: every malformed or missing reply must be an error, never a
// crash or a hang. (The real VMM peer is tested in kvm_bare_test.)
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstring>
#include <thread>

#include "factory/clone_batch.h"
#include "factory/sandbox_client.h"

namespace kf {
namespace {

struct Pair {
  Pair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds), 0); }
  ~Pair() { ::close(fds[0]); ::close(fds[1]); }
  int fds[2];
};

// Answers one request with `reply` truncated to `size` bytes; like the real
// VMM, it answers kVmmStatusBadRequest to a request that is not exactly
// sizeof(SandboxRequest) bytes.
std::thread Answer(int fd, SandboxReply reply, size_t size) {
  return std::thread([=]() mutable {
    char req[sizeof(SandboxRequest) + 1];
    ssize_t n = ::recv(fd, req, sizeof req, 0);
    if (n <= 0) return;
    if (static_cast<size_t>(n) != sizeof(SandboxRequest)) reply.status = kVmmStatusBadRequest;
    ::send(fd, &reply, size, 0);
  });
}

TEST(SandboxClient, PingRoundTrip) {
  Pair p;
  SandboxReply r;
  r.ret[0] = 9;
  r.ret[1] = 1;
  auto t = Answer(p.fds[1], r, offsetof(SandboxReply, data));
  SandboxClient c(p.fds[0], 2000);
  auto pings = c.Ping(9);
  t.join();
  ASSERT_TRUE(pings.ok()) << pings.error().message();
  EXPECT_EQ(*pings, 1u);
}

TEST(SandboxClient, RejectsEchoMismatch) {
  Pair p;
  SandboxReply r;
  r.ret[0] = 8;
  auto t = Answer(p.fds[1], r, offsetof(SandboxReply, data));
  SandboxClient c(p.fds[0], 2000);
  EXPECT_FALSE(c.Ping(9).ok());
  t.join();
}

TEST(SandboxClient, RejectsBadMagicShortAndOverlongReplies) {
  for (int variant = 0; variant < 3; ++variant) {
    Pair p;
    SandboxReply r;
    size_t size = offsetof(SandboxReply, data);
    if (variant == 0) r.magic = 0;
    if (variant == 1) size = 6;
    if (variant == 2) r.len = KF_MAILBOX_DATA_MAX + 1;
    auto t = Answer(p.fds[1], r, size);
    SandboxClient c(p.fds[0], 2000);
    auto res = c.Ping(0);
    t.join();
    ASSERT_FALSE(res.ok()) << "variant " << variant;
    EXPECT_NE(res.error().message().find("malformed"), std::string::npos);
  }
}

TEST(SandboxClient, LengthMustMatchWhatArrived) {
  Pair p;
  SandboxReply r;
  r.len = 100;  // claims 100 bytes of data, sends none
  auto t = Answer(p.fds[1], r, offsetof(SandboxReply, data));
  SandboxClient c(p.fds[0], 2000);
  EXPECT_FALSE(c.GetIdentity().ok());
  t.join();
}

TEST(SandboxClient, GuestErrorStatusIsAnError) {
  Pair p;
  SandboxReply r;
  r.status = KF_STATUS_BAD_RANGE;
  auto t = Answer(p.fds[1], r, offsetof(SandboxReply, data));
  SandboxClient c(p.fds[0], 2000);
  auto res = c.HashRange(0, 8);
  t.join();
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.error().message().find("status 2"), std::string::npos);
}

TEST(SandboxClient, SilentPeerTimesOutAndDeadPeerIsReported) {
  {
    Pair p;
    SandboxClient c(p.fds[0], 100);
    auto res = c.Ping(1);
    ASSERT_FALSE(res.ok());
    EXPECT_NE(res.error().message().find("did not answer"), std::string::npos);
  }
  {
    Pair p;
    ::shutdown(p.fds[1], SHUT_WR);
    SandboxClient c(p.fds[0], 1000);
    EXPECT_FALSE(c.Ping(1).ok());
  }
}

TEST(SandboxClient, IdentityTooLongIsRefusedBeforeSending) {
  Pair p;
  SandboxClient c(p.fds[0], 100);
  Identity id;
  id.sandbox_id = std::string(64, 'x');
  EXPECT_FALSE(c.SetIdentity(id).ok());
}

TEST(SandboxClient, FreshIdentitiesDiffer) {
  auto a = FreshIdentity("a"), b = FreshIdentity("a");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->entropy, b->entropy);
}

TEST(Percentile, NearestRank) {
  EXPECT_EQ(Percentile({}, 50), 0u);
  EXPECT_EQ(Percentile({5}, 99), 5u);
  std::vector<uint64_t> v;
  for (uint64_t i = 1; i <= 100; ++i) v.push_back(101 - i);
  EXPECT_EQ(Percentile(v, 50), 50u);
  EXPECT_EQ(Percentile(v, 99), 99u);
  EXPECT_EQ(Percentile(v, 100), 100u);
}

}  // namespace
}  // namespace kf

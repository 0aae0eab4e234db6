// The requester side of the sandbox control channel and of agent.sock
// against peers that misbehave: every malformed or missing reply must be an
// error, never a crash or a hang. (The real peers are tested in
// kvm_bare_test.)
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstring>
#include <thread>

#include "agent/proto/agent_frame.h"
#include "factory/agent_client.h"
#include "factory/sandbox_client.h"

namespace kf {
namespace {

struct Pair {
  explicit Pair(int type = SOCK_SEQPACKET) { EXPECT_EQ(::socketpair(AF_UNIX, type, 0, fds), 0); }
  ~Pair() {
    if (fds[0] >= 0) ::close(fds[0]);
    if (fds[1] >= 0) ::close(fds[1]);
  }
  int take(int i) { return std::exchange(fds[i], -1); }
  int fds[2];
};

void SendReply(int fd, const SandboxReply& r, size_t size) { ::send(fd, &r, size, 0); }
constexpr size_t kHeader = offsetof(SandboxReply, data);

TEST(SandboxClient, ListeningThenTimings) {
  Pair p;
  SandboxReply ev;
  ev.op = kVmmEventListening;
  SandboxTimings at_listen;
  at_listen.vm_created_ns = 7;
  ev.len = sizeof at_listen;
  std::memcpy(ev.data, &at_listen, sizeof at_listen);
  SendReply(p.fds[1], ev, kHeader + ev.len);
  std::thread peer([&] {
    SandboxRequest req;
    ASSERT_EQ(::recv(p.fds[1], &req, sizeof req, 0), static_cast<ssize_t>(sizeof req));
    SandboxReply r;
    r.op = req.op;
    SandboxTimings t;
    t.fork_ns = 5;
    r.len = sizeof t;
    std::memcpy(r.data, &t, sizeof t);
    SendReply(p.fds[1], r, kHeader + r.len);
  });
  SandboxClient c(p.fds[0], 2000);
  auto listening = c.WaitListening();
  ASSERT_TRUE(listening.ok()) << listening.error().message();
  EXPECT_EQ(listening->vm_created_ns, 7u);  // the timings that came with the event
  auto t = c.Timings();
  peer.join();
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_EQ(t->fork_ns, 5u);
}

// A listening event with no timings is fine (zeros); with a length that is
// not theirs it is not.
TEST(SandboxClient, ListeningWithoutTimingsOrWithTheWrongLength) {
  for (uint32_t len : {0u, 8u}) {
    Pair p;
    SandboxReply ev;
    ev.op = kVmmEventListening;
    ev.len = len;
    SendReply(p.fds[1], ev, kHeader + len);
    SandboxClient c(p.fds[0], 2000);
    auto t = c.WaitListening();
    if (len == 0) {
      ASSERT_TRUE(t.ok()) << t.error().message();
      EXPECT_EQ(t->fork_ns, 0u);
    } else {
      EXPECT_FALSE(t.ok());
    }
  }
}

TEST(SandboxClient, RejectsBadMagicShortOverlongAndWrongOp) {
  for (int variant = 0; variant < 4; ++variant) {
    Pair p;
    SandboxReply r;
    r.op = kVmmEventListening;
    size_t size = kHeader;
    if (variant == 0) r.magic = 0;
    if (variant == 1) size = kHeader - 1;
    if (variant == 2) r.len = kSandboxReplyDataMax + 1;
    if (variant == 3) r.op = kHostOpTimings;
    SendReply(p.fds[1], r, size);
    SandboxClient c(p.fds[0], 2000);
    EXPECT_FALSE(c.WaitListening().ok()) << "variant " << variant;
  }
}

TEST(SandboxClient, SilentPeerTimesOutAndDeadPeerIsReported) {
  {
    Pair p;
    SandboxClient c(p.fds[0], 100);
    auto s = c.WaitListening();
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message().find("did not answer"), std::string::npos);
  }
  {
    Pair p;
    ::close(p.take(1));
    SandboxClient c(p.fds[0], 1000);
    auto s = c.WaitListening();
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message().find("exited"), std::string::npos);
  }
}

// A fake agent.sock peer: reads the CONNECT line, then writes `script`.
std::thread FakeAgent(int fd, std::string script) {
  return std::thread([fd, script] {
    char line[64];
    size_t n = 0;
    while (n < sizeof line && ::recv(fd, line + n, 1, 0) == 1 && line[n] != '\n') ++n;
    ::send(fd, script.data(), script.size(), MSG_NOSIGNAL);
  });
}

std::string Frame(uint32_t stream, const agentpb::Response& r) {
  std::string payload = r.SerializeAsString();
  kf_agent_frame_header h{static_cast<uint32_t>(payload.size()), stream, KF_AGENT_FRAME_RESPONSE,
                          0};
  uint8_t raw[KF_AGENT_FRAME_HEADER_SIZE];
  EXPECT_EQ(kf_agent_frame_header_encode(&h, raw), KF_PB_OK);
  return std::string(reinterpret_cast<char*>(raw), sizeof raw) + payload;
}

std::string ReadyFrame() {
  agentpb::Response r;
  r.mutable_ready()->set_agent_version(1);
  r.mutable_ready()->set_mem_total(32 << 20);
  return Frame(0, r);
}

TEST(AgentClient, HandshakeReadyAndPing) {
  Pair p(SOCK_STREAM);
  agentpb::Response pong;
  pong.mutable_ping()->set_echo(7);
  pong.mutable_ping()->set_pings_served(1);
  std::thread peer = FakeAgent(p.fds[1], "OK 1073741824\n" + ReadyFrame() + Frame(1, pong));
  auto c = AgentClient::Handshake(UniqueFd(p.take(0)), 1024, 2000);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->host_port(), 1073741824u);
  EXPECT_EQ(c->ready().mem_total(), 32u << 20);
  auto served = c->Ping(7);
  peer.join();
  ASSERT_TRUE(served.ok()) << served.error().message();
  EXPECT_EQ(*served, 1u);
}

TEST(AgentClient, BadHandshakeRepliesAreErrors) {
  for (const char* reply : {"NO\n", "OK \n", "OK 12x\n", "OK 99999999999999\n",
                            "OK 1\n" /* then no Ready */}) {
    Pair p(SOCK_STREAM);
    std::thread peer = FakeAgent(p.fds[1], reply);
    auto c = AgentClient::Handshake(UniqueFd(p.take(0)), 1024, 300);
    EXPECT_FALSE(c.ok()) << reply;
    peer.join();
  }
}

TEST(AgentClient, WrongStreamKindOrErrorReplyIsAnError) {
  agentpb::Response pong;
  pong.mutable_ping()->set_echo(7);
  agentpb::Response stats;
  stats.mutable_get_stats()->set_mem_total(1);
  agentpb::Response err;
  err.mutable_error()->set_code(agentpb::ERROR_CODE_BAD_RANGE);
  err.mutable_error()->set_message("outside memory");
  const std::string replies[] = {Frame(2, pong), Frame(1, stats), Frame(1, err)};
  const char* want[] = {"stream", "another kind", "ERROR_CODE_BAD_RANGE"};
  for (int i = 0; i < 3; ++i) {
    Pair p(SOCK_STREAM);
    std::thread peer = FakeAgent(p.fds[1], "OK 5\n" + ReadyFrame() + replies[i]);
    auto c = AgentClient::Handshake(UniqueFd(p.take(0)), 1024, 2000);
    ASSERT_TRUE(c.ok()) << c.error().message();
    auto r = c->Ping(7);
    peer.join();
    ASSERT_FALSE(r.ok()) << i;
    EXPECT_NE(r.error().message().find(want[i]), std::string::npos) << r.error().message();
  }
}

TEST(AgentClient, IdentityTooLongIsRefusedBeforeSending) {
  Pair p(SOCK_STREAM);
  std::thread peer = FakeAgent(p.fds[1], "OK 5\n" + ReadyFrame());
  auto c = AgentClient::Handshake(UniqueFd(p.take(0)), 1024, 2000);
  peer.join();
  ASSERT_TRUE(c.ok());
  Identity id;
  id.sandbox_id = std::string(64, 'x');
  EXPECT_FALSE(c->SetIdentity(id).ok());
}

TEST(AgentClient, FreshIdentitiesDiffer) {
  auto a = FreshIdentity("a"), b = FreshIdentity("a");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->entropy, b->entropy);
}

}  // namespace
}  // namespace kf

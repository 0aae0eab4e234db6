// Zygote process ownership, without KVM: the zygote opens /dev/kvm only when
// asked for a clone, so spawning, moving and stopping it runs anywhere.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "factory/zygote.h"
#include "tests/fake_template.h"

namespace kf {
namespace {

bool ProcessExists(pid_t pid) { return ::kill(pid, 0) == 0; }

TEST(Zygote, MovedFromZygoteDoesNotWaitAndTheOwnerStopsIt) {
  pid_t pid;
  {
    auto spawned = Zygote::Spawn(LoadedTemplate{});
    ASSERT_TRUE(spawned.ok()) << spawned.error().message();
    Zygote a = std::move(*spawned);  // the Result's Zygote is now empty
    pid = a.pid();
    ASSERT_GT(pid, 0);
    Zygote b;
    b = std::move(a);
    EXPECT_EQ(a.pid(), -1);
    EXPECT_EQ(b.pid(), pid);
    EXPECT_TRUE(ProcessExists(pid));
  }  // b stops and reaps it; a and the Result must not block here
  EXPECT_FALSE(ProcessExists(pid));  // reaped, not a zombie
}

// Whatever a requester sends, the zygote answers or ends cleanly: a message
// too short, of the right size with the wrong magic or an unterminated
// socket path, or longer than a request each get "malformed zygote
// request", and it serves on; EOF ends it with status 0.
TEST(Zygote, MalformedRequestsAreAnsweredAndItServesOn) {
  char tmp[] = "/tmp/kf-zygote-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmp), nullptr);
  const std::string dir = std::string(tmp) + "/tmpl";
  testing::WriteFakeTemplate(dir);
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pair[0]);
    RunZygoteProcess(dir, pair[1], JailOptions{});
  }
  ::close(pair[1]);
  const timeval limit{10, 0};  // a zygote that stops answering fails, not hangs
  ASSERT_EQ(::setsockopt(pair[0], SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit), 0);
  char buf[512];
  ASSERT_GT(::recv(pair[0], buf, sizeof buf, 0), 0) << "no hello: the template did not load";
  auto answer = [&](const std::vector<char>& msg) {
    EXPECT_EQ(::send(pair[0], msg.data(), msg.size(), 0), static_cast<ssize_t>(msg.size()));
    const ssize_t n = ::recv(pair[0], buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("(no answer)");
  };
  // The request's layout (factory/zygote.cc): magic "KFZY", mergeable, uid,
  // then the agent.sock path (108 bytes, NUL-terminated).
  const size_t kRequestSize = 12 + kAgentSockPathMax;
  std::vector<char> unterminated(kRequestSize, 'a');
  const uint32_t magic = 0x4b465a59;
  std::memcpy(unterminated.data(), &magic, 4);
  const std::vector<std::vector<char>> bad = {
      {'K', 'F'}, std::vector<char>(kRequestSize, 0), unterminated, std::vector<char>(4096, 'x')};
  for (const auto& msg : bad)
    EXPECT_NE(answer(msg).find("malformed zygote request"), std::string::npos)
        << "a " << msg.size() << "-byte request";
  ::close(pair[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  std::filesystem::remove_all(tmp);
}

}  // namespace
}  // namespace kf

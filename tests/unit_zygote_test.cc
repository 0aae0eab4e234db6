// Zygote process ownership, without KVM: the zygote opens /dev/kvm only when
// asked for a clone, so spawning, moving and stopping it runs anywhere.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include "factory/zygote.h"

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

}  // namespace
}  // namespace kf

// Shared fixture of the vsock tests: a HybridVsock over guarded memory with
// a fake guest driver, a temp directory for agent.sock, and helpers that
// drive the single-threaded device the way the VMM's loop does.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tests/fake_virtio_driver.h"
#include "vmm-glue/unique_fd.h"
#include "vmm-glue/vsock/hybrid_vsock.h"

namespace kf::testing {

inline constexpr uint64_t kVsockBase = 0xd0000000;

class VsockFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kf-vsock-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    uds_ = dir_ + "/agent.sock";
    MakeDevice(uds_);
  }
  void TearDown() override {
    driver_.reset();
    vsock_.reset();
    std::filesystem::remove_all(dir_);
  }
  void MakeDevice(const std::string& uds) {
    driver_.reset();
    vsock_.reset();
    auto v = vsock::HybridVsock::Create(mem_.view(), kVsockBase, {3, uds, false});
    ASSERT_TRUE(v.ok()) << v.error().message();
    vsock_ = std::move(*v);
    driver_ = std::make_unique<FakeVsockDriver>(vsock_->mmio(), kVsockBase, &mem_);
  }

  void Pump() {
    Status s = vsock_->ProcessHostEvents();
    ASSERT_TRUE(s.ok()) << s.error().message();
  }

  // Pumps host events and collects rx packets until `done` says so (or 3 s).
  std::vector<RxPacket> Collect(const std::function<bool(const std::vector<RxPacket>&)>& done) {
    std::vector<RxPacket> all;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (std::chrono::steady_clock::now() < deadline) {
      Pump();
      for (RxPacket& p : driver_->Receive()) all.push_back(std::move(p));
      if (done(all)) return all;
      pollfd pfd{vsock_->poll_fd(), POLLIN, 0};
      ::poll(&pfd, 1, 5);
    }
    ADD_FAILURE() << "timed out; " << all.size() << " packets so far";
    return all;
  }
  // Waits for a packet with `op`; returns it (or fails).
  RxPacket Expect(uint16_t op) {
    auto all = Collect([&](const std::vector<RxPacket>& v) {
      for (const RxPacket& p : v)
        if (p.hdr.op == op) return true;
      return false;
    });
    for (const RxPacket& p : all)
      if (p.hdr.op == op) return p;
    return RxPacket{};
  }

  // Reads exactly `n` bytes from a client socket, pumping the device.
  std::string ReadClient(int fd, size_t n) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
      char buf[65536];
      const ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), MSG_DONTWAIT);
      if (r > 0) {
        out.append(buf, static_cast<size_t>(r));
        continue;
      }
      if (r == 0) break;
      Pump();
      driver_->Receive();
      pollfd pfd{fd, POLLIN, 0};
      ::poll(&pfd, 1, 2);
    }
    return out;
  }
  // True once the client's socket reads EOF (or an error).
  bool ClientClosed(int fd) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (std::chrono::steady_clock::now() < deadline) {
      char c;
      const ssize_t r = ::recv(fd, &c, 1, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN)) return true;
      Pump();
      driver_->Receive();
      pollfd pfd{fd, POLLIN, 0};
      ::poll(&pfd, 1, 2);
    }
    return false;
  }

  // A socketpair whose other end the device took as a client.
  UniqueFd NewClient() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    Status s = vsock_->AddClient(UniqueFd(sv[1]));
    EXPECT_TRUE(s.ok()) << s.error().message();
    return UniqueFd(sv[0]);
  }
  static void Write(int fd, const std::string& s) {
    ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
  }

  // CONNECT <guest_port> through `fd`, REQUEST seen, RESPONSE sent with
  // `guest_buf` credit, "OK <port>" read. Returns the host port.
  uint32_t Handshake(int fd, uint32_t guest_port, uint32_t guest_buf = 1 << 20) {
    Write(fd, "CONNECT " + std::to_string(guest_port) + "\n");
    RxPacket req = Expect(VIRTIO_VSOCK_OP_REQUEST);
    EXPECT_EQ(req.hdr.dst_port, guest_port);
    const uint32_t host_port = req.hdr.src_port;
    driver_->Send(FakeVsockDriver::Hdr(VIRTIO_VSOCK_OP_RESPONSE, guest_port, host_port, guest_buf));
    const std::string ok = "OK " + std::to_string(host_port) + "\n";
    EXPECT_EQ(ReadClient(fd, ok.size()), ok);
    return host_port;
  }

  GuardedMemory mem_{FakeVirtioDriver::kMemorySize};
  std::string dir_, uds_;
  std::unique_ptr<vsock::HybridVsock> vsock_;
  std::unique_ptr<FakeVsockDriver> driver_;
};

}  // namespace kf::testing

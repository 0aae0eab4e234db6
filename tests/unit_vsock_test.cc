// The virtio-vsock device and its hybrid-vsock host side, without KVM: a
// fake guest driver in guarded memory, real Unix sockets on the host side.
#include <gtest/gtest.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "tests/vsock_test_util.h"
#include "vmm-glue/virtio/mmio_transport.h"
#include "vmm-glue/vsock/connection.h"
#include "vmm-glue/vsock/unix_muxer.h"

namespace {

using kf::UniqueFd;
using kf::testing::FakeVirtioDriver;
using kf::testing::FakeVsockDriver;
using kf::testing::RxPacket;
using kf::vsock::kFirstHostPort;
using kf::vsock::kHostBufAlloc;
using Hdr = FakeVsockDriver;

class VsockTest : public kf::testing::VsockFixture {};

int Count(const std::vector<RxPacket>& v, uint16_t op) {
  int n = 0;
  for (const RxPacket& p : v) n += p.hdr.op == op;
  return n;
}

std::string Payload(const std::vector<RxPacket>& v) {
  std::string s;
  for (const RxPacket& p : v)
    if (p.hdr.op == VIRTIO_VSOCK_OP_RW) s += p.payload;
  return s;
}

TEST_F(VsockTest, NothingHappensWithoutWork) {
  ASSERT_TRUE(driver_->Start());
  Pump();
  EXPECT_FALSE(vsock_->TakeGuestWork());
  EXPECT_TRUE(driver_->Receive().empty());
  EXPECT_EQ(driver_->TakeEvents(), 0);
}

TEST_F(VsockTest, HostConnectThroughSocketpair) {
  ASSERT_TRUE(driver_->Start());
  UniqueFd client = NewClient();
  Write(client.get(), "CONNECT 1024\n");
  RxPacket req = Expect(VIRTIO_VSOCK_OP_REQUEST);
  EXPECT_TRUE(vsock_->TakeGuestWork());
  EXPECT_FALSE(vsock_->TakeGuestWork());
  EXPECT_EQ(req.hdr.src_cid, 2u);
  EXPECT_EQ(req.hdr.dst_cid, 3u);
  EXPECT_EQ(req.hdr.src_port, kFirstHostPort);
  EXPECT_EQ(req.hdr.dst_port, 1024u);
  EXPECT_EQ(req.hdr.type, VIRTIO_VSOCK_TYPE_STREAM);
  EXPECT_EQ(req.hdr.buf_alloc, kHostBufAlloc);
  EXPECT_EQ(req.hdr.len, 0u);

  driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_RESPONSE, 1024, kFirstHostPort));
  EXPECT_TRUE(vsock_->TakeGuestWork());  // the tx chain came back
  EXPECT_EQ(ReadClient(client.get(), 14), "OK 1073741824\n");

  Write(client.get(), "hello");
  auto rx = Collect([](const auto& v) { return Payload(v) == "hello"; });
  EXPECT_EQ(rx.back().hdr.dst_port, 1024u);

  driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_RW, 1024, kFirstHostPort), "world");
  EXPECT_EQ(ReadClient(client.get(), 5), "world");

  client.Reset();  // the client goes away: the guest hears RST
  RxPacket rst = Expect(VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(rst.hdr.dst_port, 1024u);
  EXPECT_EQ(vsock_->muxer().connection_count(), 0u);
  const auto c = vsock_->counters();
  EXPECT_EQ(c.connections_opened, 1u);
  EXPECT_EQ(c.connections_reset, 1u);
  EXPECT_EQ(c.bad_chains + c.bad_packets, 0u);
  EXPECT_GE(c.rx_packets, 3u);
  EXPECT_EQ(c.tx_packets, 2u);
}

TEST_F(VsockTest, HostConnectThroughTheListenerWithEarlyBytes) {
  ASSERT_TRUE(driver_->Start());
  UniqueFd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  uds_.copy(addr.sun_path, uds_.size());
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  // The line and the first stream bytes in one write (and a header split
  // across descriptors on the way back).
  Write(client.get(), "CONNECT 1024\nearly bytes");
  RxPacket req = Expect(VIRTIO_VSOCK_OP_REQUEST);
  driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_RESPONSE, 1024, req.hdr.src_port), "", 3);
  EXPECT_EQ(ReadClient(client.get(), 14), "OK " + std::to_string(req.hdr.src_port) + "\n");
  Collect([](const auto& v) { return Payload(v) == "early bytes"; });
  driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_RW, 1024, req.hdr.src_port), "reply", 4);
  EXPECT_EQ(ReadClient(client.get(), 5), "reply");
}

TEST_F(VsockTest, RequestWaitsForRxBuffersAndForTheDriver) {
  UniqueFd client = NewClient();
  Write(client.get(), "CONNECT 7\n");
  Pump();  // no driver yet: the REQUEST waits
  ASSERT_TRUE(driver_->Start(64, 0));  // and no rx buffers
  Pump();
  EXPECT_TRUE(driver_->Receive().empty());
  driver_->PostRx(1, 4096);  // the notify delivers it
  auto rx = driver_->Receive();
  ASSERT_EQ(rx.size(), 1u);
  EXPECT_EQ(rx[0].hdr.op, VIRTIO_VSOCK_OP_REQUEST);
  EXPECT_EQ(rx[0].hdr.dst_port, 7u);
}

TEST_F(VsockTest, BadConnectLineClosesTheClient) {
  ASSERT_TRUE(driver_->Start());
  UniqueFd client = NewClient();
  Write(client.get(), "GET / HTTP/1.1\r\n");
  Pump();
  const std::string reply = ReadClient(client.get(), 200);
  EXPECT_EQ(reply.rfind("ERR vsock handshake: wrong verb", 0), 0u) << reply;
  EXPECT_TRUE(ClientClosed(client.get()));
  EXPECT_TRUE(driver_->Receive().empty());
  EXPECT_EQ(vsock_->muxer().client_count(), 0u);
  // A client that closes before finishing its line is dropped quietly.
  UniqueFd quitter = NewClient();
  Write(quitter.get(), "CONN");
  quitter.Reset();
  Pump();
  EXPECT_EQ(vsock_->muxer().client_count(), 0u);
}

TEST_F(VsockTest, GuestRefusesWithRst) {
  ASSERT_TRUE(driver_->Start());
  UniqueFd client = NewClient();
  Write(client.get(), "CONNECT 99\n");
  RxPacket req = Expect(VIRTIO_VSOCK_OP_REQUEST);
  driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_RST, 99, req.hdr.src_port));
  EXPECT_TRUE(ClientClosed(client.get()));
  EXPECT_EQ(vsock_->muxer().connection_count(), 0u);
}

TEST_F(VsockTest, HalfCloseBothWays) {
  ASSERT_TRUE(driver_->Start());
  UniqueFd client = NewClient();
  const uint32_t hp = Handshake(client.get(), 1024);
  ASSERT_EQ(::shutdown(client.get(), SHUT_WR), 0);  // the client is done sending
  RxPacket sd = Expect(VIRTIO_VSOCK_OP_SHUTDOWN);
  EXPECT_EQ(sd.hdr.flags, uint32_t{VIRTIO_VSOCK_SHUTDOWN_SEND});
  // The guest still answers, then closes its side: the client reads the
  // answer, then EOF, and the host finishes with RST.
  driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_RW, 1024, hp), "answer");
  EXPECT_EQ(ReadClient(client.get(), 6), "answer");
  driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_SHUTDOWN, 1024, hp));  // flags 0: nothing yet
  driver_->Send([&] {
    auto h = Hdr::Hdr(VIRTIO_VSOCK_OP_SHUTDOWN, 1024, hp);
    h.flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
    return h;
  }());
  Expect(VIRTIO_VSOCK_OP_RST);
  EXPECT_TRUE(ClientClosed(client.get()));
  EXPECT_EQ(vsock_->muxer().connection_count(), 0u);
}

TEST_F(VsockTest, HostNeverExceedsGuestCredit) {
  ASSERT_TRUE(driver_->Start(64, 32, 4096));
  UniqueFd client = NewClient();
  const uint32_t hp = Handshake(client.get(), 1024, /*guest_buf=*/1000);
  const std::string data(5000, 'x');
  Write(client.get(), data);
  // 1000 bytes of credit: exactly that much, then a CREDIT_REQUEST.
  auto rx = Collect([](const auto& v) { return Count(v, VIRTIO_VSOCK_OP_CREDIT_REQUEST) == 1; });
  EXPECT_EQ(Payload(rx).size(), 1000u);
  Pump();
  EXPECT_TRUE(driver_->Receive().empty());  // and nothing more, however often we look
  // The guest consumes and says so, 1000 bytes at a time.
  std::string got = Payload(rx);
  uint32_t fwd = 1000;
  while (got.size() < data.size()) {
    driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 1024, hp, 1000, fwd));
    auto more = Collect([](const auto& v) {
      return Count(v, VIRTIO_VSOCK_OP_CREDIT_REQUEST) == 1 || !v.empty();
    });
    const std::string chunk = Payload(more);
    ASSERT_LE(chunk.size(), 1000u);
    ASSERT_FALSE(chunk.empty());
    got += chunk;
    fwd += static_cast<uint32_t>(chunk.size());
  }
  EXPECT_EQ(got, data);
}

TEST_F(VsockTest, HostAdvertisesCreditAndAnswersCreditRequest) {
  ASSERT_TRUE(driver_->Start());
  UniqueFd client = NewClient();
  const uint32_t hp = Handshake(client.get(), 1024);
  driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_CREDIT_REQUEST, 1024, hp));
  RxPacket up = Expect(VIRTIO_VSOCK_OP_CREDIT_UPDATE);
  EXPECT_EQ(up.hdr.buf_alloc, kHostBufAlloc);
  EXPECT_EQ(up.hdr.fwd_cnt, 0u);
  // The client reads all; after half the buffer the host volunteers an update.
  const std::string chunk(32768, 'y');
  bool saw_update = false;
  uint32_t last_fwd = 0;
  for (int i = 0; i < 6; ++i) {
    driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_RW, 1024, hp), chunk);
    ASSERT_EQ(ReadClient(client.get(), chunk.size()).size(), chunk.size());
    for (const RxPacket& p : driver_->Receive()) {
      if (p.hdr.op == VIRTIO_VSOCK_OP_CREDIT_UPDATE) {
        saw_update = true;
        last_fwd = p.hdr.fwd_cnt;
      }
    }
  }
  EXPECT_TRUE(saw_update);
  EXPECT_GE(last_fwd, kHostBufAlloc / 2);
}

TEST_F(VsockTest, GuestExceedingCreditIsReset) {
  ASSERT_TRUE(driver_->Start());
  UniqueFd client = NewClient();
  int small = 4096;
  ::setsockopt(client.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const uint32_t hp = Handshake(client.get(), 1024);
  // The client reads nothing: the host buffers up to its buf_alloc, then a
  // guest that keeps sending has broken the credit contract.
  const std::string chunk(65536, 'z');
  bool reset = false;
  for (int i = 0; i < 40 && !reset; ++i) {
    driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_RW, 1024, hp), chunk);
    for (const RxPacket& p : driver_->Receive()) reset |= p.hdr.op == VIRTIO_VSOCK_OP_RST;
  }
  EXPECT_TRUE(reset);
  EXPECT_EQ(vsock_->muxer().connection_count(), 0u);
}

TEST_F(VsockTest, GuestInitiatedConnect) {
  ASSERT_TRUE(driver_->Start());
  const std::string path = uds_ + "_5000";
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, path.size());
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.get(), 4), 0);

  driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_REQUEST, 777, 5000, 65536));
  RxPacket resp = Expect(VIRTIO_VSOCK_OP_RESPONSE);
  EXPECT_EQ(resp.hdr.src_port, 5000u);
  EXPECT_EQ(resp.hdr.dst_port, 777u);
  UniqueFd server(::accept(listener.get(), nullptr, nullptr));
  ASSERT_TRUE(server.valid());
  driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_RW, 777, 5000, 65536), "ping");
  EXPECT_EQ(ReadClient(server.get(), 4), "ping");
  Write(server.get(), "pong");
  Collect([](const auto& v) { return Payload(v) == "pong"; });

  // No listener on 5001: RST.
  driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_REQUEST, 778, 5001));
  RxPacket rst = Expect(VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(rst.hdr.src_port, 5001u);
  EXPECT_EQ(rst.hdr.dst_port, 778u);
  EXPECT_EQ(vsock_->muxer().connection_count(), 1u);
}

TEST_F(VsockTest, GuestConnectWithoutUdsPathIsRefused) {
  MakeDevice("");
  ASSERT_TRUE(driver_->Start());
  driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_REQUEST, 778, 5000));
  Expect(VIRTIO_VSOCK_OP_RST);
}

TEST_F(VsockTest, StrayAndMalformedPackets) {
  ASSERT_TRUE(driver_->Start());
  // RW for no connection: RST back.
  driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_RW, 1, 2), "x");
  RxPacket r = Expect(VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(r.hdr.src_port, 2u);
  EXPECT_EQ(r.hdr.dst_port, 1u);
  // An RST for no connection: silence.
  driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_RST, 1, 2));
  EXPECT_TRUE(driver_->Receive().empty());
  // SEQPACKET: RST.
  auto h = Hdr::Hdr(VIRTIO_VSOCK_OP_REQUEST, 3, 4);
  h.type = VIRTIO_VSOCK_TYPE_SEQPACKET;
  driver_->Send(h);
  EXPECT_EQ(Expect(VIRTIO_VSOCK_OP_RST).hdr.type, VIRTIO_VSOCK_TYPE_SEQPACKET);
  const uint64_t bad_before = vsock_->counters().bad_packets;
  // Wrong CIDs: dropped without an answer.
  h = Hdr::Hdr(VIRTIO_VSOCK_OP_REQUEST, 3, 4);
  h.src_cid = 4;
  driver_->Send(h);
  h = Hdr::Hdr(VIRTIO_VSOCK_OP_REQUEST, 3, 4);
  h.dst_cid = 1;
  driver_->Send(h);
  EXPECT_TRUE(driver_->Receive().empty());
  // len disagreeing with the chain, and over the cap.
  h = Hdr::Hdr(VIRTIO_VSOCK_OP_RW, 3, 4);
  h.len = 10;
  driver_->Send(h, "abc");
  h.len = 70000;
  driver_->Send(h, std::string(70000, 'q'));
  h = Hdr::Hdr(VIRTIO_VSOCK_OP_REQUEST, 3, 4);
  h.len = 3;
  driver_->Send(h, "abc");
  EXPECT_EQ(vsock_->counters().bad_packets, bad_before + 5);
  EXPECT_FALSE(vsock_->needs_reset());
  // A tx chain shorter than a header.
  driver_->Post(1, {{FakeVirtioDriver::BufferGpa(1, 0), 20, false}});
  driver_->Notify(1);
  auto used = driver_->TakeUsed(1);
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 0u);
  EXPECT_EQ(vsock_->counters().bad_packets, bad_before + 6);
}

TEST_F(VsockTest, SixtyFourClientsAtOnce) {
  ASSERT_TRUE(driver_->Start(256, 128, 4096));
  constexpr int kClients = 64;
  std::vector<UniqueFd> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(NewClient());
    Write(clients.back().get(), "CONNECT " + std::to_string(2000 + i) + "\nmsg" + std::to_string(i));
  }
  auto reqs = Collect([&](const auto& v) { return Count(v, VIRTIO_VSOCK_OP_REQUEST) == kClients; });
  for (const RxPacket& p : reqs) {
    if (p.hdr.op == VIRTIO_VSOCK_OP_REQUEST) {
      driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_RESPONSE, p.hdr.dst_port, p.hdr.src_port));
    }
  }
  // Each client's early bytes arrive on its own guest port; echo them back.
  int echoed = 0;
  auto data = Collect([&](const auto& v) { return Count(v, VIRTIO_VSOCK_OP_RW) == kClients; });
  for (const RxPacket& p : data) {
    if (p.hdr.op != VIRTIO_VSOCK_OP_RW) continue;
    EXPECT_EQ(p.payload, "msg" + std::to_string(p.hdr.dst_port - 2000));
    driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_RW, p.hdr.dst_port, p.hdr.src_port), "echo:" + p.payload);
    ++echoed;
  }
  EXPECT_EQ(echoed, kClients);
  for (int i = 0; i < kClients; ++i) {
    const std::string want = "OK ";
    std::string got = ReadClient(clients[i].get(), 14);  // "OK 10737418xx\n"
    ASSERT_EQ(got.rfind(want, 0), 0u) << got;
    const std::string echo = "echo:msg" + std::to_string(i);
    EXPECT_EQ(ReadClient(clients[i].get(), echo.size()), echo);
  }
  EXPECT_EQ(vsock_->muxer().connection_count(), static_cast<size_t>(kClients));
}

TEST_F(VsockTest, DeviceResetDropsKnownConnectionsOnly) {
  ASSERT_TRUE(driver_->Start());
  UniqueFd known = NewClient();
  Handshake(known.get(), 1024);
  ASSERT_TRUE(driver_->Start(64, 0));  // reset and re-init, no rx buffers
  EXPECT_TRUE(ClientClosed(known.get()));
  UniqueFd waiting = NewClient();
  Write(waiting.get(), "CONNECT 5\n");
  Pump();
  driver_->Write32(VIRTIO_MMIO_STATUS, 0);  // its REQUEST was never sent: it survives
  ASSERT_TRUE(driver_->Start());
  EXPECT_EQ(Expect(VIRTIO_VSOCK_OP_REQUEST).hdr.dst_port, 5u);
}

TEST_F(VsockTest, NeedsResetStopsTheDevice) {
  ASSERT_TRUE(driver_->Start());
  // avail idx jumps far ahead on tx: the ring is broken.
  const uint16_t idx = 1000;
  std::memcpy(mem_.at(FakeVirtioDriver::AvailGpa(1) + 2), &idx, 2);
  driver_->Notify(1);
  EXPECT_TRUE(vsock_->needs_reset());
  EXPECT_TRUE(vsock_->TakeGuestWork());
  // Host connections wait; nothing touches the rings until a reset.
  UniqueFd client = NewClient();
  Write(client.get(), "CONNECT 1\n");
  Pump();
  EXPECT_FALSE(vsock_->TakeGuestWork());
  ASSERT_TRUE(driver_->Start());
  EXPECT_FALSE(vsock_->needs_reset());
  EXPECT_EQ(Expect(VIRTIO_VSOCK_OP_REQUEST).hdr.dst_port, 1u);
}

// --- snapshot ---

TEST_F(VsockTest, SaveRestoreRoundTripAndTransportReset) {
  ASSERT_TRUE(driver_->Start());
  UniqueFd client = NewClient();
  const uint32_t hp = Handshake(client.get(), 1024);
  driver_->Send(Hdr::Hdr(VIRTIO_VSOCK_OP_RW, 1024, hp), "abc");
  EXPECT_EQ(ReadClient(client.get(), 3), "abc");

  const auto saved = vsock_->Save();
  EXPECT_EQ(saved.guest_cid(), 3u);
  EXPECT_EQ(saved.transport().status() & VIRTIO_CONFIG_S_DRIVER_OK,
            uint32_t{VIRTIO_CONFIG_S_DRIVER_OK});
  ASSERT_EQ(saved.transport().queues_size(), 3);
  EXPECT_EQ(saved.transport().queues(0).size(), 64u);
  EXPECT_EQ(saved.transport().queues(1).desc_gpa(), FakeVirtioDriver::DescGpa(1));
  EXPECT_EQ(saved.transport().queues(1).last_avail_idx(), 2u);  // RESPONSE and RW
  ASSERT_EQ(saved.connections_size(), 1);
  EXPECT_EQ(saved.connections(0).host_port(), hp);
  EXPECT_EQ(saved.connections(0).guest_port(), 1024u);
  EXPECT_EQ(saved.connections(0).rx_cnt(), 3u);
  EXPECT_EQ(saved.connections(0).fwd_cnt(), 3u);
  EXPECT_EQ(saved.next_host_port(), hp + 1);

  // A clone: a new device on the same memory, another uds path.
  auto clone = kf::vsock::HybridVsock::Create(mem_.view(), kf::testing::kVsockBase,
                                              {3, dir_ + "/clone.sock"});
  ASSERT_TRUE(clone.ok());
  ASSERT_TRUE((*clone)->Restore(saved).ok());
  auto again = (*clone)->Save();
  // Equal but for the event queue, where TRANSPORT_RESET went out at once.
  auto* event_queue = again.mutable_transport()->mutable_queues(2);
  EXPECT_EQ(event_queue->last_avail_idx(), saved.transport().queues(2).last_avail_idx() + 1);
  EXPECT_EQ(event_queue->next_used_idx(), saved.transport().queues(2).next_used_idx() + 1);
  *event_queue = saved.transport().queues(2);
  EXPECT_EQ(again.transport().SerializeAsString(), saved.transport().SerializeAsString());
  EXPECT_EQ(again.connections_size(), 0);  // dropped
  EXPECT_EQ(again.next_host_port(), hp + 1);
  EXPECT_TRUE((*clone)->TakeGuestWork());  // the event went out at once
  driver_->set_mmio((*clone)->mmio());
  EXPECT_EQ(driver_->TakeEvents(), 1);
  EXPECT_FALSE((*clone)->transport_reset_pending());

  // The restored rings carry on: a new connection through the clone.
  vsock_ = std::move(*clone);
  UniqueFd c2 = NewClient();
  EXPECT_EQ(Handshake(c2.get(), 1024), hp + 1);
}

TEST_F(VsockTest, TransportResetWaitsForAnEventBuffer) {
  ASSERT_TRUE(driver_->Init(3, 64));
  driver_->PostRx(8, 4096);  // rx buffers but no event buffers
  const auto saved = vsock_->Save();
  auto clone = kf::vsock::HybridVsock::Create(mem_.view(), kf::testing::kVsockBase, {});
  ASSERT_TRUE(clone.ok());
  ASSERT_TRUE((*clone)->Restore(saved).ok());
  EXPECT_TRUE((*clone)->transport_reset_pending());
  EXPECT_FALSE((*clone)->TakeGuestWork());
  vsock_ = std::move(*clone);
  driver_->set_mmio(vsock_->mmio());
  UniqueFd client = NewClient();  // its REQUEST waits behind the event
  Write(client.get(), "CONNECT 9\n");
  Pump();
  EXPECT_TRUE(driver_->Receive().empty());
  driver_->PostEvents(1);
  EXPECT_TRUE(vsock_->TakeGuestWork());
  EXPECT_EQ(driver_->TakeEvents(), 1);
  EXPECT_EQ(Expect(VIRTIO_VSOCK_OP_REQUEST).hdr.dst_port, 9u);
}

// Linux guests: after TRANSPORT_RESET, nothing reaches rx until the driver
// refilled and notified the event queue (it has then reset its sockets), so
// a new connection cannot be reset along with the stale ones.
TEST_F(VsockTest, HeldRxWaitsForTheResetAcknowledgement) {
  ASSERT_TRUE(driver_->Start());
  const auto saved = vsock_->Save();
  kf::vsock::HybridVsockOptions o;
  o.hold_rx_until_reset_ack = true;
  auto clone = kf::vsock::HybridVsock::Create(mem_.view(), kf::testing::kVsockBase, o);
  ASSERT_TRUE(clone.ok());
  ASSERT_TRUE((*clone)->Restore(saved).ok());
  vsock_ = std::move(*clone);
  driver_->set_mmio(vsock_->mmio());
  EXPECT_FALSE(vsock_->transport_reset_pending());  // the event went out at once
  UniqueFd client = NewClient();
  Write(client.get(), "CONNECT 9\n");
  Pump();
  EXPECT_TRUE(driver_->Receive().empty()) << "REQUEST delivered before the reset was handled";
  EXPECT_EQ(driver_->TakeEvents(), 1);  // takes the event, refills, notifies: the ack
  EXPECT_EQ(Expect(VIRTIO_VSOCK_OP_REQUEST).hdr.dst_port, 9u);
}

TEST_F(VsockTest, RestoreRefusesBadState) {
  ASSERT_TRUE(driver_->Start());
  const auto good = vsock_->Save();
  auto clone_or = kf::vsock::HybridVsock::Create(mem_.view(), kf::testing::kVsockBase, {});
  ASSERT_TRUE(clone_or.ok());
  auto& clone = *clone_or;
  const std::string before = clone->Save().SerializeAsString();

  struct Case {
    const char* needle;
    std::function<void(katafactory::snapshot::v1::VsockDeviceState&)> mutate;
  };
  const uint64_t mem_size = FakeVirtioDriver::kMemorySize;
  const Case cases[] = {
      {"outside guest memory", [&](auto& s) { s.mutable_transport()->mutable_queues(0)->set_used_gpa(mem_size - 8); }},
      {"outside guest memory", [&](auto& s) { s.mutable_transport()->mutable_queues(2)->set_desc_gpa(~uint64_t{0} - 0xfff); }},
      {"power of two", [](auto& s) { s.mutable_transport()->mutable_queues(1)->set_size(48); }},
      {"power of two", [](auto& s) { s.mutable_transport()->mutable_queues(1)->set_size(512); }},
      {"power of two", [](auto& s) { s.mutable_transport()->mutable_queues(1)->set_size(0); }},
      {"aligned", [](auto& s) { s.mutable_transport()->mutable_queues(1)->set_desc_gpa(0x10008); }},
      {"above 65535", [](auto& s) { s.mutable_transport()->mutable_queues(0)->set_last_avail_idx(70000); }},
      {"unknown bits", [](auto& s) { s.mutable_transport()->set_status(0x10f); }},
      {"skips a step", [](auto& s) { s.mutable_transport()->set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK); }},
      {"does not offer", [](auto& s) { s.mutable_transport()->set_driver_features(s.transport().driver_features() | (1u << 28)); }},
      {"VERSION_1", [](auto& s) { s.mutable_transport()->set_driver_features(0); }},
      {"interrupt status", [](auto& s) { s.mutable_transport()->set_interrupt_status(4); }},
      {"the device has 3", [](auto& s) { s.mutable_transport()->mutable_queues()->RemoveLast(); }},
      {"not ready", [](auto& s) { s.mutable_transport()->mutable_queues(2)->set_ready(false); }},
      {"guest CID", [](auto& s) { s.set_guest_cid(2); }},
      {"guest CID", [](auto& s) { s.set_guest_cid(0xffffffff); }},
      {"no transport", [](auto& s) { s.clear_transport(); }},
      {"below 2^30", [](auto& s) { s.set_next_host_port(5); }},
  };
  for (const Case& c : cases) {
    auto bad = good;
    c.mutate(bad);
    kf::Status s = clone->Restore(bad);
    ASSERT_FALSE(s.ok()) << c.needle;
    EXPECT_NE(s.error().message().find(c.needle), std::string::npos) << s.error().message();
    EXPECT_EQ(clone->Save().SerializeAsString(), before) << c.needle << ": state changed";
  }
  // A queue the driver has not set up may sit anywhere, until it is ready.
  auto fresh = clone->Save();
  EXPECT_TRUE(clone->Restore(fresh).ok());
  EXPECT_TRUE(clone->Restore(good).ok());
}

}  // namespace

namespace {

// Poll mode (the bare guest): the device tells the driver not to notify,
// and takes queued tx when the VMM polls it at the guest's wait.
TEST(VsockPollMode, NoNotifyFlagAndPolledTx) {
  kf::testing::GuardedMemory mem(FakeVirtioDriver::kMemorySize);
  kf::vsock::HybridVsockOptions options;
  options.poll_on_wait = true;
  auto v = kf::vsock::HybridVsock::Create(mem.view(), kf::testing::kVsockBase, options);
  ASSERT_TRUE(v.ok()) << v.error().message();
  FakeVsockDriver driver((*v)->mmio(), kf::testing::kVsockBase, &mem);
  ASSERT_TRUE(driver.Start());
  for (int q = 0; q < 3; ++q) {
    uint16_t flags;
    std::memcpy(&flags, mem.at(FakeVirtioDriver::UsedGpa(q)), sizeof flags);
    EXPECT_EQ(flags, kf::virtio::kUsedFlagNoNotify) << "queue " << q;
  }
  // A packet queued on tx without a notify is taken at the next poll.
  const uint64_t buf = FakeVirtioDriver::BufferGpa(1, 0);
  uint8_t raw[kf::vsock::kHeaderSize];
  kf::vsock::EncodeHeader(Hdr::Hdr(VIRTIO_VSOCK_OP_REQUEST, 1024, 5000), raw);
  std::memcpy(mem.at(buf), raw, sizeof raw);
  driver.Post(1, {{buf, static_cast<uint32_t>(sizeof raw), false}});
  EXPECT_TRUE(driver.TakeUsed(1).empty()) << "nothing happens before the poll";
  (*v)->PollGuestQueues();
  EXPECT_EQ(driver.TakeUsed(1).size(), 1u) << "the poll consumed the tx packet";
  // No uds_path: the guest's connect is refused with RST.
  auto rx = driver.Receive();
  ASSERT_EQ(rx.size(), 1u);
  EXPECT_EQ(rx[0].hdr.op, VIRTIO_VSOCK_OP_RST);
}

}  // namespace

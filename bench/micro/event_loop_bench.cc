// Which event loop should a sandbox VMM use for its host sockets (issue #3:
// "liburing or epoll: measure and choose")? The VMM's pattern is: sleep until
// one of a few Unix sockets is readable, read a small message, write a small
// reply. This measures one such round trip through a socketpair whose far end
// is echoed by a thread, with the near end served by
//   - poll()            (what factory/bare_ports.cc does around the device),
//   - epoll_wait()      (what the vsock muxer uses for its many clients),
//   - io_uring          (POLL_ADD + wait, then plain read/write), and
//   - io_uring          (READ submitted and awaited directly).
// Run: build/bench/micro/event_loop_bench
#include <benchmark/benchmark.h>
#include <liburing.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <thread>

namespace {

// A socketpair whose far end echoes every 64-byte message until closed.
struct EchoPair {
  EchoPair() {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
    echo = std::thread([fd = fds[1]] {
      char buf[64];
      for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) return;
        if (::write(fd, buf, n) != n) return;
      }
    });
  }
  ~EchoPair() {
    ::shutdown(fds[0], SHUT_RDWR);
    echo.join();
    ::close(fds[0]);
    ::close(fds[1]);
  }
  int near() const { return fds[0]; }
  int fds[2];
  std::thread echo;
};

char g_msg[64] = "ping";

void ReadReply(int fd) {
  char buf[64];
  size_t got = 0;
  while (got < sizeof buf) {
    ssize_t n = ::read(fd, buf + got, sizeof buf - got);
    if (n <= 0) std::abort();
    got += n;
  }
}

void BM_Poll(benchmark::State& state) {
  EchoPair p;
  for (auto _ : state) {
    if (::write(p.near(), g_msg, sizeof g_msg) != sizeof g_msg) std::abort();
    pollfd pfd{p.near(), POLLIN, 0};
    if (::poll(&pfd, 1, -1) != 1) std::abort();
    ReadReply(p.near());
  }
}
BENCHMARK(BM_Poll)->UseRealTime();

void BM_Epoll(benchmark::State& state) {
  EchoPair p;
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = p.near();
  ::epoll_ctl(ep, EPOLL_CTL_ADD, p.near(), &ev);
  for (auto _ : state) {
    if (::write(p.near(), g_msg, sizeof g_msg) != sizeof g_msg) std::abort();
    epoll_event out;
    if (::epoll_wait(ep, &out, 1, -1) != 1) std::abort();
    ReadReply(p.near());
  }
  ::close(ep);
}
BENCHMARK(BM_Epoll)->UseRealTime();

void BM_IoUringPoll(benchmark::State& state) {
  EchoPair p;
  io_uring ring;
  if (io_uring_queue_init(8, &ring, 0) != 0) {
    state.SkipWithError("io_uring_queue_init failed (io_uring disabled here?)");
    return;
  }
  for (auto _ : state) {
    if (::write(p.near(), g_msg, sizeof g_msg) != sizeof g_msg) std::abort();
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_poll_add(sqe, p.near(), POLLIN);
    io_uring_submit(&ring);
    io_uring_cqe* cqe;
    if (io_uring_wait_cqe(&ring, &cqe) != 0) std::abort();
    io_uring_cqe_seen(&ring, cqe);
    ReadReply(p.near());
  }
  io_uring_queue_exit(&ring);
}
BENCHMARK(BM_IoUringPoll)->UseRealTime();

void BM_IoUringRead(benchmark::State& state) {
  EchoPair p;
  io_uring ring;
  if (io_uring_queue_init(8, &ring, 0) != 0) {
    state.SkipWithError("io_uring_queue_init failed (io_uring disabled here?)");
    return;
  }
  char buf[64];
  for (auto _ : state) {
    if (::write(p.near(), g_msg, sizeof g_msg) != sizeof g_msg) std::abort();
    size_t got = 0;
    while (got < sizeof buf) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      io_uring_prep_read(sqe, p.near(), buf + got, sizeof buf - got, 0);
      io_uring_submit(&ring);
      io_uring_cqe* cqe;
      if (io_uring_wait_cqe(&ring, &cqe) != 0 || cqe->res <= 0) std::abort();
      got += cqe->res;
      io_uring_cqe_seen(&ring, cqe);
    }
  }
  io_uring_queue_exit(&ring);
}
BENCHMARK(BM_IoUringRead)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

// A minimal HTTP/1.1 server for Prometheus scrapes: GET (or HEAD) /metrics
// answers 200 with the body the handler renders; any other path 404, any
// other method 405. One thread, poll(2), non-blocking sockets. Bounded:
// requests over 8 KiB get 431, a client idle for the timeout is dropped, at
// most 32 connections at once (more wait in the listen backlog). Every
// answer closes its connection (Connection: close).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "vmm-glue/result.h"
#include "vmm-glue/unique_fd.h"

namespace kf::ops {

class MetricsHttpServer {
 public:
  // Called on the server's thread for each GET /metrics: the body, in the
  // text format (e.g. [&] { UpdateKsmGauges(m); return registry.Render(); }).
  using Handler = std::function<std::string()>;

  struct Options {
    std::chrono::milliseconds client_timeout{5000};
    size_t max_request_bytes = 8192;
    size_t max_connections = 32;
  };

  // Listens on `address` ("127.0.0.1:9464"; port 0 picks one) and starts
  // the thread.
  static Result<std::unique_ptr<MetricsHttpServer>> Start(const std::string& address,
                                                          Handler handler);
  static Result<std::unique_ptr<MetricsHttpServer>> Start(const std::string& address,
                                                          Handler handler, Options options);
  ~MetricsHttpServer();  // Stop()
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  uint16_t port() const { return port_; }
  // Stops the thread and closes every socket; idempotent.
  void Stop();

 private:
  MetricsHttpServer(UniqueFd listener, UniqueFd wake, uint16_t port, Handler handler,
                    Options options);
  void Loop();

  UniqueFd listener_;
  UniqueFd wake_;  // eventfd: written by Stop()
  uint16_t port_;
  Handler handler_;
  Options options_;
  std::thread thread_;
};

// The response to one raw request head ("GET /metrics HTTP/1.1\r\n...").
// Exposed for tests; `metrics` renders the body only when asked for it.
std::string HttpResponseFor(const std::string& request_head,
                            const MetricsHttpServer::Handler& metrics);

}  // namespace kf::ops

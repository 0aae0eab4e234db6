// The Linux guest's serial console on the host: every byte the guest's 8250
// sends goes to a log file and to each client of console.sock; what a
// client types goes back into the UART's receive FIFO.
//
// Threading: Output() runs on the vCPU thread (inside a UART register
// write), the fd handlers on the device thread; the LinuxMachine's device
// mutex serialises them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vmm-glue/result.h"
#include "vmm-glue/unique_fd.h"

namespace kf {

class LinuxConsole {
 public:
  // Either path may be empty (no log, no socket). The socket is created
  // (mode 0600) and unlinked by the destructor.
  static Result<std::unique_ptr<LinuxConsole>> Open(const std::string& log_path,
                                                     const std::string& sock_path);
  LinuxConsole(const LinuxConsole&) = delete;
  LinuxConsole& operator=(const LinuxConsole&) = delete;
  ~LinuxConsole();

  // Guest output. Never blocks on a client: a client that does not keep up
  // loses output (the log file has all of it).
  void Output(std::span<const uint8_t> bytes);

  // The fds the device thread polls: the listener and each client.
  std::vector<int> PollFds() const;
  // Serves one readable fd from PollFds(); client input goes to `input`,
  // which returns how many bytes the UART took (the rest is dropped).
  void OnReadable(int fd, const std::function<size_t(std::span<const uint8_t>)>& input);

  uint64_t bytes_out() const { return bytes_out_; }

 private:
  LinuxConsole() = default;

  UniqueFd log_;
  UniqueFd listener_;
  std::string sock_path_;
  std::vector<UniqueFd> clients_;
  uint64_t bytes_out_ = 0;
};

}  // namespace kf

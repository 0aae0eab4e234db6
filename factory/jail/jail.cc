#include "factory/jail/jail.h"

#include <unistd.h>

#include <algorithm>
#include <vector>

#include "factory/jail/capabilities.h"
#include "factory/jail/seccomp_filter.h"

namespace kf {

Status EnterJail(const JailOptions& options) {
  if (options.drop_capabilities) RETURN_IF_ERROR(DropCapabilities(options.uid));
  else if (options.uid != 0) RETURN_IF_ERROR(SwitchToSandboxIds(options.uid));
  return InstallSandboxSeccomp(options.seccomp);
}

void CloseAllExcept(std::initializer_list<int> keep) {
  std::vector<int> fds;
  for (int fd : keep)
    if (fd > 2) fds.push_back(fd);
  std::sort(fds.begin(), fds.end());
  unsigned first = 3;
  for (int fd : fds) {
    if (static_cast<unsigned>(fd) > first) ::close_range(first, fd - 1, 0);
    first = std::max(first, static_cast<unsigned>(fd) + 1);
  }
  ::close_range(first, ~0U, 0);
}

}  // namespace kf

#include "factory/daemon/host_stats.h"

#include <sys/stat.h>

#include <fstream>

namespace kf::daemon {

namespace {
uint64_t ReadNumber(const std::string& path) {
  std::ifstream in(path);
  uint64_t v = 0;
  if (!(in >> v)) return 0;
  return v;
}
}  // namespace

KsmFigures ReadKsm(const std::string& dir) {
  KsmFigures k;
  struct stat st;
  k.available = ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  if (!k.available) return k;
  k.run = ReadNumber(dir + "/run");
  k.pages_shared = ReadNumber(dir + "/pages_shared");
  k.pages_sharing = ReadNumber(dir + "/pages_sharing");
  return k;
}

}  // namespace kf::daemon

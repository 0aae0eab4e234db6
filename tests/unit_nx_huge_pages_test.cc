// vmm-glue/nx_huge_pages.h against a fake sysfs tree (the two files it
// reads, the one it writes). The real kernel's parameter is set and read
// back in the nested tier (scripts/nested-kvm-test: `host --tune`).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "vmm-glue/nx_huge_pages.h"

namespace kf {
namespace {

namespace fs = std::filesystem;

class NxHugePagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kf-nx-sysfs.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  // The kernel's files end in a newline, as these do.
  void Put(const std::string& rel, const std::string& line) {
    fs::create_directories(fs::path(root_ + rel).parent_path());
    std::ofstream(root_ + rel) << line << "\n";
  }
  void Param(const std::string& v) { Put("/module/kvm/parameters/nx_huge_pages", v); }
  void Cpu(const std::string& v) { Put("/devices/system/cpu/vulnerabilities/itlb_multihit", v); }
  std::string ParamFile() {
    std::ifstream f(root_ + "/module/kvm/parameters/nx_huge_pages");
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  std::string root_;
};

TEST_F(NxHugePagesTest, NoKvmModule) {
  NxHugePages n = ReadNxHugePages(root_);
  EXPECT_FALSE(n.present);
  EXPECT_FALSE(n.ThreadPerVm());
  EXPECT_NE(n.WhyNotTunable().find("not loaded"), std::string::npos);
  EXPECT_FALSE(SetNxHugePagesNever(root_).ok());
}

TEST_F(NxHugePagesTest, OffOnAnUnaffectedCpuIsSetToNever) {
  Param("N");
  Cpu("Not affected");
  NxHugePages n = ReadNxHugePages(root_);
  EXPECT_TRUE(n.present);
  EXPECT_EQ(n.value, "N");
  EXPECT_TRUE(n.ThreadPerVm());
  EXPECT_EQ(n.WhyNotTunable(), "");
  auto done = SetNxHugePagesNever(root_);
  ASSERT_TRUE(done.ok()) << done.error().message();
  EXPECT_EQ(*done, "kvm.nx_huge_pages N -> never (no recovery thread per VM)");
  EXPECT_EQ(ParamFile(), "never");
  NxHugePages after = ReadNxHugePages(root_);
  EXPECT_FALSE(after.ThreadPerVm());
  EXPECT_EQ(after.WhyNotTunable(), "already never");
  EXPECT_FALSE(SetNxHugePagesNever(root_).ok());  // the caller checks ThreadPerVm first
}

TEST_F(NxHugePagesTest, AnAffectedCpuIsLeftAlone) {
  Param("N");
  Cpu("KVM: Vulnerable");
  EXPECT_NE(ReadNxHugePages(root_).WhyNotTunable().find("affected"), std::string::npos);
  auto done = SetNxHugePagesNever(root_);
  ASSERT_FALSE(done.ok());
  EXPECT_NE(done.error().message().find("stays N"), std::string::npos) << done.error().message();
  EXPECT_EQ(ParamFile(), "N\n");
}

TEST_F(NxHugePagesTest, MitigationOnIsLeftAlone) {
  Param("Y");
  Cpu("KVM: Mitigation: Split huge pages");
  NxHugePages n = ReadNxHugePages(root_);
  EXPECT_TRUE(n.ThreadPerVm());
  EXPECT_NE(n.WhyNotTunable().find("mitigation is on"), std::string::npos);
  EXPECT_FALSE(SetNxHugePagesNever(root_).ok());
  EXPECT_EQ(ParamFile(), "Y\n");
}

TEST_F(NxHugePagesTest, UnknownCpuIsLeftAlone) {
  Param("N");  // no vulnerabilities file: an old kernel
  EXPECT_NE(ReadNxHugePages(root_).WhyNotTunable().find("does not say"), std::string::npos);
  EXPECT_FALSE(SetNxHugePagesNever(root_).ok());
  EXPECT_EQ(ParamFile(), "N\n");
}

}  // namespace
}  // namespace kf

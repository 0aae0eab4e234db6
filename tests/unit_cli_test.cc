// The kata-factory binary as a user meets it: bad input gets exit status 2
// (usage) or 1 (failure) and a one-line reason, never a crash.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "factory/cli/args.h"
#include "factory/jail/cgroup.h"
#include "factory/jail/sandbox_uids.h"
#include "tests/cli_run.h"
#include "vmm-glue/nx_huge_pages.h"

namespace {

using kf::testing::Cli;
using kf::testing::CliRun;

TEST(Cli, HelpTellsTheVerbs) {
  CliRun r = Cli("--help");
  EXPECT_EQ(r.status, 0);
  for (const char* verb : {"demo", "template", "clone", "host"})
    EXPECT_NE(r.output.find(verb), std::string::npos) << verb;
  EXPECT_EQ(Cli("clone --help").status, 0);
  EXPECT_EQ(Cli("template create --help").status, 0);
}

// `host` says what of the jail this host can enforce, whether or not KVM
// is usable, and matches what the jail code itself finds.
TEST(Cli, HostReportsTheJailItCanEnforce) {
  CliRun r = Cli("host --json");
  EXPECT_NE(r.output.find("\"jail\":{\"seccomp\":"), std::string::npos) << r.output;
  const kf::CgroupProbe probe = kf::ProbeSandboxCgroups();
  EXPECT_NE(r.output.find(probe.usable ? "\"cgroup\":true" : "\"cgroup\":false"),
            std::string::npos)
      << r.output;
  if (!probe.usable) {
    EXPECT_NE(r.output.find(probe.reason), std::string::npos) << r.output;
  }
  // kvm.nx_huge_pages as vmm-glue reads it (never --tune here: it would
  // change this host; the nested tier tunes L1).
  const kf::NxHugePages nx = kf::ReadNxHugePages();
  EXPECT_NE(r.output.find(std::string("\"kvm_nx_huge_pages\":{\"present\":") +
                          (nx.present ? "true" : "false")),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(nx.ThreadPerVm() ? "\"thread_per_vm\":true" : "\"thread_per_vm\":false"),
            std::string::npos)
      << r.output;
  CliRun text = Cli("host");
  EXPECT_NE(text.output.find("jail: seccomp allow-list: "), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("jail: cgroup v2 per sandbox: "), std::string::npos) << text.output;
  const bool uids = kf::SandboxUidsUnavailableReason().empty();
  EXPECT_NE(r.output.find(uids ? "\"sandbox_uids\":true" : "\"sandbox_uids\":false"),
            std::string::npos)
      << r.output;
  EXPECT_NE(text.output.find(uids ? "jail: a uid per sandbox: yes" : "jail: a uid per sandbox: no: "),
            std::string::npos)
      << text.output;
}

TEST(Cli, BadUsageIsExit2WithOneLine) {
  for (const char* args : {"", "frobnicate", "clone", "clone /x --count", "clone /x --count abc",
                           "clone /x --count -3", "clone /x --bogus", "template",
                           "template create --guest windows --out /tmp/x", "template create"}) {
    CliRun r = Cli(args);
    EXPECT_EQ(r.status, 2) << "args: " << args << "\n" << r.output;
  }
  CliRun r = Cli("clone /x --bogus");
  EXPECT_EQ(r.output, "kata-factory: unknown option --bogus (see --help)\n");
}

TEST(Cli, MissingOrDamagedTemplateIsExit1) {
  CliRun r = Cli("template inspect /nonexistent/template");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("/nonexistent/template"), std::string::npos);
  auto dir = std::filesystem::temp_directory_path() / "kf-cli-test-damaged";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "state.bin") << "not a template";
  std::ofstream(dir / "memory.img") << "";
  r = Cli("clone " + dir.string() + " --count 1");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  std::filesystem::remove_all(dir);
}

TEST(Args, ParsesFlagsOptionsAndPositionals) {
  auto a = kf::cli::Args::Parse({"dir", "--count", "5", "--json", "--mem-mib=64"}, {"json"},
                                {"count", "mem-mib"});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->positional().size(), 1u);
  EXPECT_EQ(*a->GetUint("count", 0), 5u);
  EXPECT_EQ(*a->GetUint("mem-mib", 0), 64u);
  EXPECT_EQ(*a->GetUint("absent", 7), 7u);
  EXPECT_TRUE(a->Has("json"));
  EXPECT_FALSE(kf::cli::Args::Parse({"--json=1"}, {"json"}, {}).ok());
  EXPECT_FALSE(kf::cli::Args::Parse({"--count"}, {}, {"count"}).ok());
}

}  // namespace

// The CLI skeleton: help, version, global options on either side, exit codes.
#include <gtest/gtest.h>

#include "test_util.h"

using bottleneck::test::run_cli;

TEST(Cli, HelpListsCommands) {
  auto r = run_cli("--help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const char* name : {"train", "arch"}) EXPECT_NE(r.output.find(name), std::string::npos) << name;
  EXPECT_NE(r.output.find("--device"), std::string::npos);
}

TEST(Cli, NoArgumentsIsUsageError) {
  auto r = run_cli("");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("usage"), std::string::npos);
}

TEST(Cli, VersionNamesLibTorch) {
  auto r = run_cli("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("bottleneck 0."), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("LibTorch "), std::string::npos) << r.output;
}

TEST(Cli, CommandHelp) {
  auto r = run_cli("train --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--data"), std::string::npos);
  EXPECT_NE(r.output.find("--resume"), std::string::npos);
}

TEST(Cli, GlobalOptionsBeforeOrAfterCommand) {
  auto before = run_cli("--threads 1 --seed 3 arch --arch unet-s --json");
  auto after = run_cli("arch --arch unet-s --json --threads 1 --seed 3");
  EXPECT_EQ(before.exit_code, 0) << before.output;
  EXPECT_EQ(after.exit_code, 0) << after.output;
  EXPECT_EQ(before.output, after.output);
  EXPECT_NE(before.output.find("\"widths\""), std::string::npos);
}

TEST(Cli, UnknownCommandOptionAndBadValuesExitTwoWithOneLine) {
  for (const char* args : {"frobnicate", "arch --no-such-option", "arch --threads x", "--threads -1 arch",
                           "arch --device tpu", "arch --channels 2", "arch --widths 16,x", "arch extra-arg",
                           "train --noise gaussian:abc --data /tmp --out /tmp/x"}) {
    auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    // One line: the message, then the newline.
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << "\n" << r.output;
  }
}

// OpenMP starts every thread asked for: 100000 of them ran for minutes, 2^31-1 aborted in
// libgomp. Far past the cores is a usage error that names the limit.
TEST(Cli, ThreadsAreBoundedByTheHardware) {
  for (const char* n : {"100000", "2147483647"}) {
    auto r = run_cli(std::string("--threads ") + n + " arch");
    EXPECT_EQ(r.exit_code, 2) << n << "\n" << r.output;
    EXPECT_NE(r.output.find(std::string("--threads ") + n + " is more than"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("hardware threads"), std::string::npos) << r.output;
  }
  EXPECT_EQ(run_cli("--threads 16 arch").exit_code, 0) << "16 is allowed on any machine";
}

TEST(Cli, ArchReportsParametersAndFlops) {
  auto r = run_cli("arch --arch unet-m --channels 3");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("parameters:"), std::string::npos);
  EXPECT_NE(r.output.find("FLOPs per pixel:"), std::string::npos);
  EXPECT_NE(r.output.find("\"in_channels\":3"), std::string::npos) << r.output;
}

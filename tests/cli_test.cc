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

// cxxopts said only "Argument 'abc' failed to parse": every typed option of every command now
// names itself and the type it takes, exit 2, one line.
TEST(Cli, ABadValueNamesTheOptionAndItsType) {
  const std::pair<const char*, const char*> cases[] = {
      {"denoise in out --tile abc", "denoise: --tile takes a whole number from -2147483648 to 2147483647, got 'abc'"},
      {"eval --clean x --batch 2.5", "eval: --batch takes a whole number from -2147483648 to 2147483647, got '2.5'"},
      {"bench x --tile=99999999999", "bench: --tile takes a whole number from -2147483648 to 2147483647, got "
                                     "'99999999999'"},
      {"bench x --tiles 256,x", "bench: --tiles takes comma-separated whole numbers, got '256,x'"},
      {"arch --threads x", "arch: --threads takes a whole number from -2147483648 to 2147483647, got 'x'"},
      {"--seed -1 arch", "arch: --seed takes a whole number from 0 to 18446744073709551615, got '-1'"},
      {"arch --cpu-cache lots", "arch: --cpu-cache takes a whole number from -9223372036854775808 to "
                                "9223372036854775807, got 'lots'"},
      {"train --data d --out o --lr fast", "train: --lr takes a number, got 'fast'"},
      {"train --data d --out o --iters 5.5", "train: --iters takes a whole number from -9223372036854775808"},
      {"train --out o --seed 1 --epochs 1e999", "train: --epochs takes a number, got '1e999'"},
      {"compress a.png -o b --quality high", "compress: --quality takes a number, got 'high'"},
      {"arch --convs many", "arch: --convs takes a whole number"},
  };
  for (const auto& [args, needle] : cases) {
    const auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << "\n" << r.output;
  }
}

namespace {
// Help text with its line wrapping undone: every run of white space becomes one space.
std::string unwrapped(const std::string& text) {
  std::string out;
  for (char c : text) {
    const bool space = c == ' ' || c == '\n' || c == '\t';
    if (space && !out.empty() && out.back() == ' ') continue;
    out += space ? ' ' : c;
  }
  return out;
}
}  // namespace

// The global options are declared once: the command finder, every command's --help and the
// top-level --help read the same table.
TEST(Cli, GlobalOptionsAreTheSameInEveryHelp) {
  auto top = run_cli("--help");
  ASSERT_EQ(top.exit_code, 0) << top.output;
  auto arch = run_cli("arch --help");
  ASSERT_EQ(arch.exit_code, 0) << arch.output;
  top.output = unwrapped(top.output);
  arch.output = unwrapped(arch.output);
  for (const char* text : {"--threads N", "--device D", "--seed N", "--cpu-cache MB", "-q, --quiet",
                           "freed CPU tensor memory kept for reuse beyond the most in use at once"}) {
    EXPECT_NE(top.output.find(text), std::string::npos) << text << "\n" << top.output;
    EXPECT_NE(arch.output.find(text), std::string::npos) << text << "\n" << arch.output;
  }
  EXPECT_NE(top.output.find("130 (SIGINT), 143 (SIGTERM)"), std::string::npos) << top.output;
  // Every global option that takes a value may stand before the command.
  EXPECT_EQ(run_cli("--cpu-cache 64 --device cpu arch --arch unet-s").exit_code, 0);
}

// The tile/batch/precision block is one declaration for denoise, eval and bench.
TEST(Cli, InferenceOptionsReadTheSameInDenoiseEvalAndBench) {
  for (const char* command : {"denoise", "eval", "bench"}) {
    auto r = run_cli(std::string(command) + " --help");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    r.output = unwrapped(r.output);
    for (const char* text : {"tiles or small images per forward pass (default 4)",
                             "0 = whole images in one pass (default 1024)",
                             "fp32, or bf16: about 2x faster on CPUs with AVX512-BF16"})
      EXPECT_NE(r.output.find(text), std::string::npos) << command << ": " << text << "\n" << r.output;
  }
}

// Process-wide settings: the OpenBLAS kernel choice, as a rule and as the CLI applies it.
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/runtime.h"
#include "test_util.h"

using namespace bottleneck;
using bottleneck::test::run_command;
using bottleneck::test::TempDir;

TEST(Runtime, OpenBlasGenericKernelsAreReplacedOnlyWhenTheCpuHasBetter) {
  EXPECT_EQ(openblas_core_override("Prescott", true, true), "SkylakeX");
  EXPECT_EQ(openblas_core_override("PRESCOTT", false, true), "Haswell");
  EXPECT_EQ(openblas_core_override("Prescott", false, false), "");
  // A core OpenBLAS recognised is its own business, whatever the CPU flags say.
  EXPECT_EQ(openblas_core_override("Haswell", true, true), "");
  EXPECT_EQ(openblas_core_override("SkylakeX", true, true), "");
  EXPECT_EQ(openblas_core_override("", true, true), "");
}

// OPENBLAS_VERBOSE=2 makes OpenBLAS print the kernel set it loads ("Core: NAME"), once per
// process image: the CLI's re-executed image must load the kernels the rule asks for, and a
// user's own OPENBLAS_CORETYPE is kept.
TEST(Runtime, TheCliRunsWithTheOpenBlasKernelsTheRuleChooses) {
  TempDir dir;
  test::write_synthetic_images(dir / "in", 1, 1, 32, 32, 5);
  const std::string cli = BOTTLENECK_CLI_PATH;
  const auto cores = [](const std::string& output) {
    std::vector<std::string> names;
    const std::regex core(R"(Core: (\w+))");
    for (auto it = std::sregex_iterator(output.begin(), output.end(), core); it != std::sregex_iterator(); ++it)
      names.push_back((*it)[1]);
    return names;
  };
  const auto r = run_command("env -u OPENBLAS_CORETYPE OPENBLAS_VERBOSE=2 " + cli + " denoise " + dir / "in" + " " +
                             dir / "out" + " -q");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::vector<std::string> seen = cores(r.output);
  if (seen.empty()) GTEST_SKIP() << "OpenBLAS is not the BLAS in this process";
  const std::string wanted = openblas_core_for_this_cpu(seen.front());
  EXPECT_EQ(seen.back(), wanted.empty() ? seen.front() : wanted) << r.output;

  // Commands that do not re-execute (compress, decompress, info, --version) switch the kernels
  // in place (switch_openblas_core) before anything runs BLAS.
  const auto in_place = run_command("env -u OPENBLAS_CORETYPE OPENBLAS_VERBOSE=2 " + cli + " --version");
  ASSERT_EQ(in_place.exit_code, 0) << in_place.output;
  EXPECT_EQ(cores(in_place.output).back(), wanted.empty() ? seen.front() : wanted) << in_place.output;

  const auto mine = run_command("OPENBLAS_CORETYPE=Prescott OPENBLAS_VERBOSE=2 " + cli + " denoise " + dir / "in" +
                                " " + dir / "out2" + " -q");
  ASSERT_EQ(mine.exit_code, 0) << mine.output;
  EXPECT_EQ(cores(mine.output).back(), "Prescott") << mine.output;
}

// `bottleneck train` at the command line: options refused before anything touches disk, config
// files read as what they say, and the exit code of a run stopped by a signal.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "util/atomic_file.h"
#include "test_util.h"

namespace fs = std::filesystem;
using bottleneck::test::CommandResult;
using bottleneck::test::run_cli;
using bottleneck::test::run_command;
using bottleneck::test::TempDir;

namespace {

bool one_line(const std::string& output) { return std::count(output.begin(), output.end(), '\n') == 1; }

// A run on a network small enough that a step takes milliseconds on one thread.
std::string tiny_run(const TempDir& dir, const std::string& out) {
  return "train --data " + dir / "train" + " --out " + dir / out +
         " --arch unet --widths 8,16 --patch 16 --batch 2 --threads 1 --val-every 1000000 --log-every 1";
}

}  // namespace

// --lr 1e300 used to pass validation and fail once the run directory existed.
TEST(TrainCli, AbsurdValuesAreRefusedBeforeTheRunDirectoryIsMade) {
  TempDir dir;
  bottleneck::test::write_synthetic_images(dir / "train", 2, 1, 32, 32, 1);
  const std::pair<const char*, const char*> cases[] = {
      {" --lr 1e300", "train: --lr must be > 0 and at most 1, got 1e+300"},
      {" --iters 9999999999999", "train: --iters must be from 1 to 1000000000, got 9999999999999"},
      {" --epochs 0", "train: --epochs must be > 0"},
      {" --iters 10 --epochs -3", "train: --epochs must be > 0"},
      {" --step-gamma 7", "train: --step-gamma must be > 0 and at most 1, got 7"},
      {" --workers 0", "train: --workers must be from 1 to 256, got 0"},
  };
  for (const auto& [flags, needle] : cases) {
    const CommandResult r = run_cli(tiny_run(dir, "run") + flags);
    EXPECT_EQ(r.exit_code, 2) << flags << "\n" << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << flags << "\n" << r.output;
    EXPECT_TRUE(one_line(r.output)) << r.output;
    EXPECT_FALSE(fs::exists(dir / "run")) << flags;
  }
}

// A config file is options too: a bad one is a usage error (exit 2, as the README says of bad
// options) that names the file and the key, and nothing is created.
TEST(TrainCli, BadConfigFilesExitTwoNamingTheFileAndTheKey) {
  TempDir dir;
  const std::pair<const char*, const char*> cases[] = {
      {R"({"iters": 9999999999999999999999})", ": \"iters\" must be a whole number from"},
      {R"({"iters": 5.7})", ": \"iters\" must be a whole number from"},
      {R"({"iters": 0})", ": \"iters\" must be from 1 to 1000000000, got 0"},
      {R"({"lr": 1e300})", ": \"lr\" must be > 0 and at most 1, got 1e+300"},
      {R"({"batch": -4})", ": \"batch\" must be from 1 to"},
      {R"({"itres": 5})", ": unknown option \"itres\""},
      {R"({"iters": )", ": not valid JSON"},
  };
  const std::string config = dir / "cfg.json";
  for (const auto& [json, needle] : cases) {
    bottleneck::write_file_atomically(config, json);
    const CommandResult r = run_cli("train --config " + config + " --data " + dir / "d" + " --out " + dir / "run");
    EXPECT_EQ(r.exit_code, 2) << json << "\n" << r.output;
    EXPECT_NE(r.output.find(config + needle), std::string::npos) << json << "\n" << r.output;
    EXPECT_EQ(r.output.find("--iters"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir / "run"));
  }
}

// A run stopped by SIGINT or SIGTERM exited 0, as a finished one does. It now exits 128 + the
// signal (130, 143), after writing last.ckpt and saying how to resume.
TEST(TrainCli, ARunStoppedByASignalExitsWithItsOwnCode) {
  TempDir dir;
  bottleneck::test::write_synthetic_images(dir / "train", 2, 1, 32, 32, 1);
  for (const auto& [signal, code] : {std::pair<const char*, int>{"INT", 130}, {"TERM", 143}}) {
    SCOPED_TRACE(signal);
    const std::string out = std::string("run-") + signal;
    const std::string log = dir / (out + ".log");
    // Started in the background; the signal goes once the loop has logged three steps.
    const std::string script = dir / (out + ".sh");
    bottleneck::write_file_atomically(
        script, "'" + std::string(BOTTLENECK_CLI_PATH) + "' " + tiny_run(dir, out) + " --iters 1000000 >'" + log +
                    "' 2>&1 &\npid=$!\nfor i in $(seq 600); do\n  [ $(cat '" + dir / out +
                    "/metrics.csv' 2>/dev/null | wc -l) -ge 4 ] && break\n  sleep 0.1\ndone\nkill -" + signal +
                    " $pid\nwait $pid\necho \"exit=$?\"\n");
    const CommandResult r = run_command("sh '" + script + "'");
    const std::string output = bottleneck::read_file(log);
    EXPECT_NE(r.output.find("exit=" + std::to_string(code)), std::string::npos) << r.output << "\n" << output;
    EXPECT_TRUE(fs::exists(dir / (out + "/last.ckpt"))) << output;
    EXPECT_NE(output.find("continue with: bottleneck train --resume"), std::string::npos) << output;
  }
  // A finished run still exits 0.
  const CommandResult done = run_cli(tiny_run(dir, "done") + " --iters 3 --quiet");
  EXPECT_EQ(done.exit_code, 0) << done.output;
}

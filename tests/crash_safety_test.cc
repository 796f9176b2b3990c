// SIGKILL at a random moment: folder denoising leaves no partial or corrupt output and
// --skip-existing finishes the job; training leaves a loadable last checkpoint and --resume ends
// with the weights of an uninterrupted run. Meant to be repeated (--gtest_repeat=20): each
// repetition kills at another moment, printed so a failure can be replayed.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <optional>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include "util/atomic_file.h"
#include "formats/checkpoint.h"
#include "image/image_io.h"
#include "nets/models.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using bottleneck::test::run_cli;
using bottleneck::test::TempDir;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Starts the CLI and waits until `ready()` holds (the job is under way: startup, which is most
// of a short run, is not what these tests are about), then lets it run for `delay` more seconds
// and SIGKILLs it. Without `delay` it runs to the end. Returns whether it was killed, and the
// seconds from start to ready and to the end.
struct Timing {
  bool killed = false;
  double ready = 0, end = 0;
};

Timing run_and_kill(const std::string& args, const std::function<bool()>& ready, const std::string& log,
                    std::optional<double> delay = std::nullopt) {
  const std::string sh = std::string("exec '") + BOTTLENECK_CLI_PATH + "' " + args + " > '" + log + "' 2>&1";
  const auto start = Clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", sh.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  Timing timing;
  int status = 0;
  bool exited = false;
  while (!ready()) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  timing.ready = seconds_since(start);
  if (!exited) {
    if (delay) {
      std::this_thread::sleep_for(std::chrono::duration<double>(*delay));
      kill(pid, SIGKILL);
    }
    waitpid(pid, &status, 0);
  }
  timing.end = seconds_since(start);
  timing.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  return timing;
}

// A moment in [0, span) seconds, different for every repetition and printed for replay.
double random_moment(double span, const char* what) {
  static std::mt19937_64 rng(static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  const double t = std::uniform_real_distribution<double>(0.0, std::max(span, 1e-3))(rng);
  std::cout << what << ": SIGKILL " << t << " s into the " << span << " s of work\n";
  return t;
}

bool has_files(const std::string& dir) {
  std::error_code ec;
  return fs::exists(dir, ec) && fs::recursive_directory_iterator(dir, ec) != fs::recursive_directory_iterator();
}

bool is_temporary(const fs::path& p) {
  const std::string name = p.filename().string();
  return name[0] == '.' && name.find(".tmp-") != std::string::npos;
}

// A temporary as a writer killed by the previous run leaves it (named by write_atomically's
// scheme, with the PID of a process that no longer exists), planted so the clean-up is
// exercised whatever moment the kill hit.
void plant_stale_temporary(const std::string& dir, const std::string& stem, const std::string& ext) {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  const std::string path = dir + "/." + stem + ".tmp-" + std::to_string(pid) + "-0" + ext;
  ASSERT_TRUE(is_atomic_temporary(fs::path(path).filename().string()));
  fs::create_directories(dir);
  std::ofstream(path, std::ios::binary) << "half-written";
}

// Regular files under `dir` by relative path; temporaries of a killed writer are counted apart.
std::map<std::string, std::string> outputs(const std::string& dir, int* temporaries = nullptr) {
  std::map<std::string, std::string> files;
  if (!fs::exists(dir)) return files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    if (is_temporary(e.path())) {
      if (temporaries) ++*temporaries;
      continue;
    }
    files[e.path().lexically_relative(dir).generic_string()] = read_file(e.path().string());
  }
  return files;
}

// The folder, model and uninterrupted result shared by the repetitions of the denoise test.
struct DenoiseReference {
  TempDir dir;
  std::string args;  // without the output folder
  std::map<std::string, std::string> outputs;
  double seconds = 0;
};

const DenoiseReference& denoise_reference() {
  static std::unique_ptr<DenoiseReference> ref;
  if (ref) return *ref;
  ref = std::make_unique<DenoiseReference>();
  const TempDir& dir = ref->dir;
  ArchSpec spec;
  spec.widths = {8, 16};
  torch::manual_seed(5);
  CheckpointInfo info;
  info.arch = spec;
  save_checkpoint(dir / "model.ckpt", *make_model(spec), nullptr, info);
  // 40 small files of three formats in two folders, so a kill lands between and inside writes.
  for (int i = 0; i < 40; ++i) {
    const std::string name = (i % 2 ? "a/" : "b/") + std::string("img") + std::to_string(i) + (i % 3 == 0 ? ".tif" : i % 3 == 1 ? ".png" : ".jpg");
    fs::create_directories(fs::path(dir / "in/" + name).parent_path());
    cv::imwrite(dir / "in/" + name, tensor_to_mat(test::synthetic_image(1, 100 + i, 160, 100 + i), CV_8U));
  }
  ref->args = "denoise --model " + dir / "model.ckpt" + " " + dir / "in" + " --batch 1 --threads 1 ";
  const Timing t = run_and_kill(ref->args + dir / "full", [&] { return has_files(dir / "full"); }, dir / "full.log");
  ref->seconds = t.end - t.ready;
  EXPECT_FALSE(t.killed) << read_file(dir / "full.log");
  ref->outputs = outputs(dir / "full");
  EXPECT_EQ(ref->outputs.size(), 40u);
  return *ref;
}

struct TrainReference {
  TempDir dir;
  std::string args;  // without --out
  std::string metrics;
  double seconds = 0;
};

// The layout is forced: a kill can land before the run has recorded its measured layout, and a
// fresh measurement may pick the other one (which rounds differently) than the reference run's.
const std::string kTrainNet = " --arch unet --widths 8,16 --patch 16 --batch 4 --iters 150 --checkpoint-every 1 "
                              "--log-every 5 --threads 1 --quiet --layout channels-last ";

const TrainReference& train_reference() {
  static std::unique_ptr<TrainReference> ref;
  if (ref) return *ref;
  ref = std::make_unique<TrainReference>();
  test::write_synthetic_images(ref->dir / "data", 6, 1, 48, 48, 7);
  ref->args = "train --data " + ref->dir / "data" + kTrainNet;
  const std::string run = ref->dir / "full";
  const Timing t = run_and_kill(ref->args + "--out " + run, [&] { return fs::exists(run + "/config.json"); },
                                ref->dir / "full.log");
  ref->seconds = t.end - t.ready;
  EXPECT_FALSE(t.killed) << read_file(ref->dir / "full.log");
  return *ref;
}

double max_weight_difference(const std::string& a, const std::string& b) {
  auto ma = load_checkpoint(a).model, mb = load_checkpoint(b).model;
  auto pb = mb->named_parameters();
  double diff = 0;
  for (const auto& item : ma->named_parameters())
    diff = std::max(diff, (item.value() - pb[item.key()]).abs().max().item<double>());
  return diff;
}

// metrics.csv without the timing columns (patches/s, elapsed), which differ between runs.
std::string without_timing(const std::string& csv) {
  std::string out;
  std::stringstream ss(csv);
  for (std::string line; std::getline(ss, line);) out += line.substr(0, line.find(",,,,,")) + "\n";
  return out;
}

}  // namespace

TEST(CrashSafety, DenoiseKilledAnywhereLeavesOnlyCompleteOutputsAndSkipExistingFinishes) {
  const DenoiseReference& ref = denoise_reference();
  ASSERT_EQ(ref.outputs.size(), 40u);
  TempDir dir;
  const std::string out = dir / "out";
  const bool killed = run_and_kill(ref.args + out, [&] { return has_files(out); }, dir / "log",
                                  random_moment(ref.seconds, "denoise")).killed;

  int temporaries = 0;
  const auto partial = outputs(out, &temporaries);
  std::cout << (killed ? "killed" : "finished first") << " with " << partial.size() << " of 40 outputs, "
            << temporaries << " temporaries\n";
  for (const auto& [name, bytes] : partial) {
    ASSERT_TRUE(ref.outputs.count(name)) << "unexpected file " << name;
    EXPECT_EQ(bytes, ref.outputs.at(name)) << name << " differs from the uninterrupted run's output";
    EXPECT_NO_THROW(load_image(out + "/" + name)) << name;
  }

  plant_stale_temporary(out + "/a", "img1", ".png");
  const auto resumed = run_cli(ref.args + out + " --skip-existing");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("denoised " + std::to_string(40 - partial.size()) + ", skipped " +
                                std::to_string(partial.size()) + ", failed 0"),
            std::string::npos) << resumed.output;
  temporaries = 0;
  EXPECT_EQ(outputs(out, &temporaries), ref.outputs);
  EXPECT_EQ(temporaries, 0) << "the killed run's temporaries must be cleaned up";
}

TEST(CrashSafety, TrainingKilledAnywhereLeavesALoadableCheckpointAndResumeFinishesIdentically) {
  const TrainReference& ref = train_reference();
  ASSERT_TRUE(fs::exists(ref.dir / "full/last.ckpt"));
  TempDir dir;
  const std::string run = dir / "run";
  const bool killed = run_and_kill(ref.args + "--out " + run, [&] { return fs::exists(run + "/config.json"); },
                                  dir / "log", random_moment(ref.seconds, "train")).killed;

  plant_stale_temporary(run, "last", ".ckpt");
  if (fs::exists(run + "/last.ckpt")) {
    // Whatever the moment, the checkpoint on disk is a complete one.
    const LoadedCheckpoint loaded = load_checkpoint(run + "/last.ckpt");
    std::cout << (killed ? "killed" : "finished first") << " at checkpoint iteration " << loaded.info.iteration << "\n";
    EXPECT_GE(loaded.info.iteration, 1);
    EXPECT_LE(loaded.info.iteration, 150);
    const auto resumed = run_cli("train --resume " + run + " --threads 1 --quiet");
    ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  } else {
    // Killed before the first checkpoint: nothing to resume (a one-line error), and starting
    // again works.
    std::cout << "killed before the first checkpoint\n";
    const auto resumed = run_cli("train --resume " + run + " --threads 1 --quiet");
    EXPECT_EQ(resumed.exit_code, 1) << resumed.output;
    EXPECT_NE(resumed.output.find("nothing to resume"), std::string::npos) << resumed.output;
    const auto again = run_cli(ref.args + "--out " + run);
    ASSERT_EQ(again.exit_code, 0) << again.output;
  }
  EXPECT_EQ(read_checkpoint_info(run + "/last.ckpt").iteration, 150);
  EXPECT_EQ(max_weight_difference(run + "/last.ckpt", ref.dir / "full/last.ckpt"), 0.0);
  EXPECT_EQ(without_timing(read_file(run + "/metrics.csv")), without_timing(read_file(ref.dir / "full/metrics.csv")));
  int temporaries = 0;
  outputs(run, &temporaries);
  EXPECT_EQ(temporaries, 0) << "the killed run's temporaries must be cleaned up";
}

// End-to-end training through the CLI on generated images: quality, resume, signals, configs.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "util/atomic_file.h"
#include "formats/checkpoint.h"
#include "test_util.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using bottleneck::test::run_cli;
using bottleneck::test::TempDir;

namespace {

// A small network and short steps so each run takes seconds on one thread.
const std::string kSmallNet = "--arch unet --widths 16,32,64 --patch 48 --batch 8 --threads 1 ";

void make_data(const TempDir& dir) {
  test::write_synthetic_images(dir / "train", 24, 1, 96, 96, 100);
  test::write_synthetic_images(dir / "val", 3, 1, 80, 72, 900);
}

// Max |a - b| over all parameters of two checkpoints.
double max_weight_difference(const std::string& a, const std::string& b) {
  auto ma = load_checkpoint(a).model, mb = load_checkpoint(b).model;
  auto pa = ma->named_parameters(), pb = mb->named_parameters();
  double diff = 0;
  for (const auto& item : pa) diff = std::max(diff, (item.value() - pb[item.key()]).abs().max().item<double>());
  return diff;
}

}  // namespace

TEST(Train, SmallUnetBeatsNoisyInputByThreeDb) {
  TempDir dir;
  make_data(dir);
  const auto start = std::chrono::steady_clock::now();
  auto r = run_cli("train --data " + dir / "train" + " --val " + dir / "val" + " --noise gaussian:25 --out " +
                   dir / "run" + " " + kSmallNet + "--iters 300 --lr 2e-3 --val-every 100 --checkpoint-every 100");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Sanitizer builds run several times slower: scripts/test_sanitize.sh scales the budget.
  const char* scale = std::getenv("BOTTLENECK_TIME_BUDGET_SCALE");
  EXPECT_LE(seconds, 60 * (scale ? std::atof(scale) : 1.0)) << "the budget for this test is 40 s of training";

  const CheckpointInfo best = read_checkpoint_info(dir / "run/best.ckpt");
  const CheckpointInfo last = read_checkpoint_info(dir / "run/last.ckpt");
  EXPECT_EQ(last.iteration, 300);
  // metrics.csv holds the noisy-input PSNR next to the model's on each validation row.
  std::ifstream csv(dir / "run/metrics.csv");
  std::string line, last_val_row;
  std::getline(csv, line);
  EXPECT_EQ(line.rfind("iteration,lr,loss,val_psnr_noisy", 0), 0u) << line;
  int val_rows = 0;
  while (std::getline(csv, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string c;
    while (std::getline(ss, c, ',')) cells.push_back(c);
    if (cells.size() > 5 && !cells[5].empty()) ++val_rows, last_val_row = line;
  }
  EXPECT_EQ(val_rows, 3);
  std::stringstream ss(last_val_row);
  std::vector<double> v;
  for (std::string c; std::getline(ss, c, ',');) v.push_back(c.empty() ? NAN : std::stod(c));
  const double noisy_psnr = v[3], model_psnr = v[5];
  EXPECT_GT(noisy_psnr, 19.5);
  EXPECT_LT(noisy_psnr, 21.5);  // sigma 25 on [0,255] is 20.2 dB before clipping
  EXPECT_GE(model_psnr - noisy_psnr, 3.0) << "noisy " << noisy_psnr << " model " << model_psnr;
  // metrics.csv keeps 8 significant digits (30.047xxx: 6 decimals), the checkpoint the exact
  // double: the CSV's value may be rounded up by up to 5e-7.
  EXPECT_GE(best.best_val_psnr, model_psnr - 1e-6);

  EXPECT_TRUE(fs::exists(dir / "run/curves.png"));
  EXPECT_TRUE(fs::exists(dir / "run/config.json"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "run/samples"), fs::directory_iterator{}), 3);
  // The resolved config repeats the run: it names the data and the iterations.
  const std::string config = read_file(dir / "run/config.json");
  EXPECT_NE(config.find("\"iters\": 300"), std::string::npos) << config;
  EXPECT_NE(config.find(dir / "train"), std::string::npos);
}

TEST(Train, StoppedAndResumedRunEqualsUninterruptedRunBitExactly) {
  TempDir dir;
  make_data(dir);
  const std::string common = "train --data " + dir / "train" + " --noise gaussian:0-50 " + kSmallNet +
                             "--iters 24 --checkpoint-every 5 --log-every 4 ";
  auto full = run_cli(common + "--out " + dir / "full");
  ASSERT_EQ(full.exit_code, 0) << full.output;
  // The memory layout is measured per run (two runs on a busy machine may pick differently, and
  // the layouts round differently); the split run takes the full run's measurement, as a resumed
  // run takes its own.
  ASSERT_TRUE(fs::exists(dir / "full/layout.json")) << full.output;
  fs::create_directories(dir / "split");
  fs::copy_file(dir / "full/layout.json", dir / "split/layout.json");
  auto first = run_cli(common + "--out " + dir / "split --stop-after 13");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("--resume " + dir / "split"), std::string::npos) << first.output;
  EXPECT_EQ(read_checkpoint_info(dir / "split/last.ckpt").iteration, 13);
  auto second = run_cli("train --resume " + dir / "split --threads 1");
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("measured earlier"), std::string::npos) << second.output;
  EXPECT_EQ(read_checkpoint_info(dir / "split/last.ckpt").iteration, 24);
  EXPECT_EQ(max_weight_difference(dir / "full/last.ckpt", dir / "split/last.ckpt"), 0.0);
  // The resumed run's metrics continue the first: same rows as the uninterrupted run.
  auto strip_timing = [](const std::string& csv) {
    std::string out;
    std::stringstream ss(csv);
    for (std::string line; std::getline(ss, line);) out += line.substr(0, line.find(",,,,,")) + "\n";
    return out;
  };
  EXPECT_EQ(strip_timing(read_file(dir / "split/metrics.csv")), strip_timing(read_file(dir / "full/metrics.csv")));
}

TEST(Train, LayoutIsMeasuredOnceAndCanBeForced) {
  TempDir dir;
  make_data(dir);
  const std::string common = "train --data " + dir / "train" + " " + kSmallNet + "--iters 2 ";
  auto measured = run_cli(common + "--out " + dir / "a");
  ASSERT_EQ(measured.exit_code, 0) << measured.output;
  EXPECT_NE(measured.output.find("layout: "), std::string::npos) << measured.output;
  const auto record = nlohmann::json::parse(read_file(dir / "a/layout.json"));
  EXPECT_GT(record.at("nchw_patches_per_s").get<double>(), 0);
  EXPECT_GT(record.at("channels_last_patches_per_s").get<double>(), 0);
  EXPECT_EQ(record.at("channels_last").get<bool>(),
            record.at("channels_last_patches_per_s").get<double>() > record.at("nchw_patches_per_s").get<double>());
  EXPECT_EQ(record.at("key").at("threads").get<int>(), 1);
  // Forced: no probe, no record.
  auto forced = run_cli(common + "--layout nchw --out " + dir / "b");
  ASSERT_EQ(forced.exit_code, 0) << forced.output;
  EXPECT_FALSE(fs::exists(dir / "b/layout.json"));
  EXPECT_EQ(run_cli(common + "--layout nhwc --out " + dir / "c").exit_code, 2);
  // A record for another machine (or thread count) is measured again.
  auto other = record;
  other["key"]["cpu"] = "another CPU";
  fs::create_directories(dir / "d");
  write_file_atomically(dir / "d/layout.json", other.dump());
  auto again = run_cli(common + "--out " + dir / "d");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(again.output.find("measured earlier"), std::string::npos) << again.output;
  EXPECT_NE(nlohmann::json::parse(read_file(dir / "d/layout.json")).at("key").at("cpu"), "another CPU");
}

// A resumed run that stops before its next validation still reports the last one in full.
TEST(Train, ResumedRunReportsTheLastValidationBeforeTheStop) {
  TempDir dir;
  make_data(dir);
  auto first = run_cli("train --data " + dir / "train" + " --val " + dir / "val" + " --val-every 5 --noise gaussian:25 " +
                       kSmallNet + "--iters 12 --stop-after 6 --out " + dir / "run");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  auto second = run_cli("train --resume " + dir / "run --threads 1 --stop-after 2");
  ASSERT_EQ(second.exit_code, 0) << second.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(second.output, m, std::regex(R"(validation PSNR [0-9.]+ dB \(noisy ([0-9.]+) dB)")))
      << second.output;
  EXPECT_GT(std::stod(m[1]), 15.0) << second.output;  // sigma 25 on [0,1] images: about 20 dB
}

TEST(Train, RefusesToOverwriteARunWithoutResume) {
  TempDir dir;
  make_data(dir);
  const std::string args = "train --data " + dir / "train" + " --out " + dir / "run " + kSmallNet + "--iters 2";
  ASSERT_EQ(run_cli(args).exit_code, 0);
  auto again = run_cli(args);
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.output.find("--resume"), std::string::npos) << again.output;
}

TEST(Train, SigintWritesLastCheckpointAndResumeFinishes) {
  TempDir dir;
  make_data(dir);
  const std::string log = dir / "log.txt";
  const std::string cmd = std::string("exec '") + BOTTLENECK_CLI_PATH + "' train --data " + dir / "train" +
                          " --out " + dir / "run " + kSmallNet + "--iters 100000 --checkpoint-every 100000 > " + log +
                          " 2>&1";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait until training is under way (the progress line reports steps), then interrupt.
  for (int i = 0; i < 600; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.find("training unet") != std::string::npos) break;
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ASSERT_EQ(kill(pid, SIGINT), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  const std::string output = read_file(log);
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), 130) << output;  // stopped by SIGINT, not finished
  EXPECT_NE(output.find("continue with: bottleneck train --resume"), std::string::npos) << output;

  const CheckpointInfo info = read_checkpoint_info(dir / "run/last.ckpt");
  EXPECT_GT(info.iteration, 0);
  EXPECT_LT(info.iteration, 100000);
  EXPECT_NO_THROW(load_checkpoint(dir / "run/last.ckpt"));
  auto resumed = run_cli("train --resume " + dir / "run --threads 1 --stop-after 3");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(read_checkpoint_info(dir / "run/last.ckpt").iteration, info.iteration + 3);
}

TEST(Train, ConfigFileGivesOptionsAndFlagsOverride) {
  TempDir dir;
  make_data(dir);
  write_file_atomically(dir / "run.json", R"({"data": ")" + dir / "train" + R"(", "iters": 7, "batch": 4,
    "patch": 32, "lr": 0.0005, "loss": "l1", "noise": "poisson:30",
    "arch": {"kind": "unet", "widths": [8, 16], "in_channels": 1, "out_channels": 1}})");
  auto r = run_cli("train --config " + dir / "run.json" + " --out " + dir / "run --iters 5 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const TrainOptions resolved = train_options_from_json(read_file(dir / "run/config.json"), TrainOptions(), "config");
  EXPECT_EQ(resolved.iterations, 5);  // the flag wins
  EXPECT_EQ(resolved.patches.batch, 4);       // the file's value
  EXPECT_EQ(resolved.patches.patch, 32);
  EXPECT_EQ(resolved.loss, "l1");
  EXPECT_EQ(resolved.noise, "poisson:30");
  EXPECT_EQ(resolved.arch.widths, (std::vector<int>{8, 16}));
  EXPECT_EQ(read_checkpoint_info(dir / "run/last.ckpt").iteration, 5);
  // A typo in the config is an error naming the file and the key.
  write_file_atomically(dir / "bad.json", R"({"itres": 3})");
  auto bad = run_cli("train --config " + dir / "bad.json" + " --out " + dir / "bad");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("unknown option \"itres\""), std::string::npos) << bad.output;
}

TEST(Train, LearningRateSchedules) {
  TrainOptions o;
  o.iterations = 100;
  o.lr = 1e-3;
  o.lr_min = 1e-5;
  EXPECT_DOUBLE_EQ(learning_rate(o, 0), 1e-3);
  EXPECT_NEAR(learning_rate(o, 50), (1e-3 + 1e-5) / 2, 1e-12);
  EXPECT_NEAR(learning_rate(o, 100), 1e-5, 1e-12);
  o.schedule = "step";
  o.step_size = 30;
  o.step_gamma = 0.5;
  EXPECT_DOUBLE_EQ(learning_rate(o, 29), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(o, 30), 5e-4);
  EXPECT_DOUBLE_EQ(learning_rate(o, 95), 1.25e-4);
  o.schedule = "constant";
  EXPECT_DOUBLE_EQ(learning_rate(o, 77), 1e-3);
}

TEST(Train, EpochsSetTheRunLengthFromTheData) {
  TempDir dir;
  make_data(dir);  // 24 images of 96 x 96 = 221184 pixels; a step is 8 x 48 x 48 = 18432 pixels
  auto r = run_cli("train --data " + dir / "train" + " --out " + dir / "run " + kSmallNet + "--epochs 0.5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_checkpoint_info(dir / "run/last.ckpt").iteration, 6);
  const TrainOptions resolved = train_options_from_json(read_file(dir / "run/config.json"), TrainOptions(), "config");
  EXPECT_EQ(resolved.iterations, 6);
  EXPECT_DOUBLE_EQ(resolved.epochs, 0.5);
}

// The training loop against a toy objective: what the loop owns (resume, stops, best, metrics,
// the run directory, identity of a resumed run) is tested apart from any real task.

#include <gtest/gtest.h>

#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "formats/checkpoint.h"
#include "test_util.h"
#include "train/metrics_log.h"
#include "train/objective.h"
#include "train/run_directory.h"
#include "train/training_loop.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using test::TempDir;

namespace {

// Learns y = 2x with a 1x1 convolution; batches are a pure function of the index. Validation
// figures come from a script so the best-checkpoint rule can be checked exactly.
class ToyObjective final : public TrainingObjective {
 public:
  explicit ToyObjective(const TrainOptions& o, std::vector<double> scripted = {})
      : options_(o), scripted_(std::move(scripted)) {
    torch::manual_seed(o.seed);
    conv_ = torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 1, 1));
  }
  torch::nn::Module& module() override { return *conv_; }
  std::string describe() const override { return "toy"; }
  std::string progress_label() const override { return "toy"; }
  double training_pixels() const override { return 64 * 4; }
  TrainBatch make_batch(int64_t index) const override {
    auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(options_.seed * 1000 + index));
    TrainBatch b;
    b.index = index;
    b.noisy = torch::rand({options_.patches.batch, 1, 2, 2}, gen);
    b.clean = 2 * b.noisy;
    return b;
  }
  torch::Tensor loss(const TrainBatch& b, int64_t iteration) override {
    ++steps_;
    step_ = iteration;
    const torch::Tensor l = torch::mse_loss(conv_->forward(b.noisy), b.clean);
    return iteration == nan_loss_at ? l * std::numeric_limits<float>::quiet_NaN() : l;
  }
  // A finite loss whose update still ruins the weights (an infinite gradient).
  void before_update() override {
    if (step_ == inf_gradient_at)
      for (auto& p : conv_->parameters()) p.mutable_grad().fill_(std::numeric_limits<float>::infinity());
  }
  int64_t nan_loss_at = -1, inf_gradient_at = -1;
  std::vector<std::string> step_columns() const override { return {"steps_seen"}; }
  std::vector<double> take_step_figures() override {
    const double s = static_cast<double>(steps_);
    steps_ = 0;
    return {s};
  }
  std::vector<std::string> validation_columns() const override { return {"val_figure"}; }
  bool can_validate() const override { return !scripted_.empty(); }
  bool lower_is_better() const override { return true; }
  ValidationOutcome validate(const RunDirectory&, int64_t) override {
    ValidationOutcome v;
    v.figure = scripted_[std::min(validations_++, scripted_.size() - 1)];
    v.figures = {v.figure};
    v.summary = "figure " + std::to_string(v.figure);
    return v;
  }
  std::string figure_text(double f) const override { return std::to_string(f); }
  void save_checkpoint(const std::string& path, const torch::optim::Optimizer* optimizer,
                       const LoopState& s) const override {
    nlohmann::json j = {{"iteration", s.iteration}, {"best", std::isfinite(s.best) ? nlohmann::json(s.best) : nullptr},
                        {"loss_sum", s.loss_sum},   {"loss_count", s.loss_count},
                        {"config", s.config_json},  {"steps", steps_}};
    save_module_archive(path, *conv_, optimizer, j.dump());
  }
  LoopState load_checkpoint(const std::string& path, torch::optim::Optimizer* optimizer) override {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    load_module_state(path, archive, *conv_, optimizer);
    c10::IValue info;
    archive.try_read("bottleneck_info", info);
    const auto j = nlohmann::json::parse(info.toStringRef());
    LoopState s;
    s.iteration = j["iteration"];
    s.best = j["best"].is_null() ? NAN : j["best"].get<double>();
    s.loss_sum = j["loss_sum"];
    s.loss_count = j["loss_count"];
    s.config_json = j["config"];
    // Its running figure is part of its state: without it, the first row after a resume would
    // count only the resumed steps.
    steps_ = j["steps"];
    return s;
  }
  void write_curves(const std::string& path, const MetricsLog&) const override { write_file_atomically(path, "x"); }

  torch::Tensor weights() const { return torch::cat({conv_->weight.flatten(), conv_->bias.flatten()}).detach().clone(); }

 private:
  TrainOptions options_;
  std::vector<double> scripted_;
  torch::nn::Conv2d conv_{nullptr};
  int64_t steps_ = 0, step_ = -1;
  size_t validations_ = 0;
};

TrainOptions toy_options(const fs::path& dir, const std::string& name) {
  TrainOptions o;
  o.data_dir = (dir / "unused-data");
  o.out_dir = (dir / name).string();
  o.iterations = 20;
  o.patches.batch = 4;
  o.lr = 0.05;
  o.log_every = 3;
  o.val_every = 5;
  o.checkpoint_every = 4;
  o.seed = 7;
  return o;
}

Runtime cpu_runtime() {
  Runtime r;
  r.device = torch::kCPU;
  r.threads = 1;
  return r;
}

LoopResult run_toy(const TrainOptions& o, const TrainControl& c, std::vector<double> scripted = {},
                   torch::Tensor* weights = nullptr, int64_t nan_loss_at = -1, int64_t inf_gradient_at = -1) {
  std::unique_ptr<TrainingObjective> objective;
  const LoopResult r = run_training(
      o, c, cpu_runtime(), Logger(LogLevel::kQuiet),
      [&](const RunDirectory&) {
        auto toy = std::make_unique<ToyObjective>(o, scripted);
        toy->nan_loss_at = nan_loss_at;
        toy->inf_gradient_at = inf_gradient_at;
        return toy;
      },
      &objective);
  if (weights) *weights = static_cast<ToyObjective&>(*objective).weights();
  return r;
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

// metrics.csv without the timing columns (the last two), which differ between invocations.
std::vector<std::string> untimed_rows(const fs::path& p) {
  std::vector<std::string> rows;
  for (auto line : lines_of(p)) {
    for (int k = 0; k < 2; ++k) line = line.substr(0, line.rfind(','));
    rows.push_back(line);
  }
  return rows;
}

}  // namespace

TEST(TrainingLoop, StoppedAndResumedRunEqualsAnUninterruptedOne) {
  TempDir dir;
  torch::Tensor whole, split;
  const LoopResult w = run_toy(toy_options(dir.path(), "whole"), TrainControl{}, {3, 2, 1, 0.5}, &whole);
  EXPECT_TRUE(w.finished);
  EXPECT_EQ(w.iteration, 20);
  TrainControl first;
  first.stop_after = 7;  // mid-window: the loss window and the step figures must survive
  const LoopResult s1 = run_toy(toy_options(dir.path(), "split"), first, {3, 2, 1, 0.5});
  EXPECT_FALSE(s1.finished);
  EXPECT_EQ(s1.iteration, 7);
  TrainControl again;
  again.resume = true;
  // The resumed objective's validation script starts over: give it the rest of the first's.
  const LoopResult s2 = run_toy(toy_options(dir.path(), "split"), again, {2, 1, 0.5}, &split);
  EXPECT_TRUE(s2.finished);
  EXPECT_EQ(torch::equal(whole, split), true) << whole << split;
  EXPECT_EQ(untimed_rows(dir / "whole/metrics.csv"), untimed_rows(dir / "split/metrics.csv"));
  // Rows every 3 steps and at each validation (every 5) and the end: 3,5,6,9,10,12,15,18,20.
  const auto rows = lines_of(dir / "whole/metrics.csv");
  EXPECT_EQ(rows.front(), "iteration,lr,loss,steps_seen,val_figure,patches_per_s,elapsed_s");
  ASSERT_EQ(rows.size(), 1u + 9u);
  // steps_seen: the objective's running figure covers the steps since the previous row.
  EXPECT_EQ(rows[1].substr(0, 2), "3,");
  EXPECT_NE(rows[2].find(",2,3,"), std::string::npos) << rows[2];  // iteration 5: 2 steps, figure 3
}

TEST(TrainingLoop, BestCheckpointFollowsTheObjectivesFigureAndItsDirection) {
  TempDir dir;
  TrainOptions o = toy_options(dir.path(), "run");
  const LoopResult r = run_toy(o, TrainControl{}, {3, 1, 2, 5});  // validations at 5, 10, 15, 20
  EXPECT_DOUBLE_EQ(r.best, 1);
  ToyObjective probe(o);
  EXPECT_EQ(probe.load_checkpoint((dir / "run/best.ckpt"), nullptr).iteration, 10);
  EXPECT_EQ(probe.load_checkpoint((dir / "run/last.ckpt"), nullptr).iteration, 20);
  EXPECT_TRUE(fs::exists(dir / "run/curves.png"));
  EXPECT_TRUE(fs::exists(dir / "run/config.json"));
}

TEST(TrainingLoop, WithoutValidationBestIsTheLastState) {
  TempDir dir;
  const LoopResult r = run_toy(toy_options(dir.path(), "run"), TrainControl{});
  EXPECT_TRUE(std::isnan(r.best));
  ToyObjective probe(toy_options(dir.path(), "run"));
  EXPECT_EQ(probe.load_checkpoint((dir / "run/best.ckpt"), nullptr).iteration, 20);
  EXPECT_FALSE(fs::exists(dir / "run/curves.png"));
}

TEST(TrainingLoop, ResumeRefusesAnotherRunsCheckpoint) {
  TempDir dir;
  TrainControl first;
  first.stop_after = 4;
  run_toy(toy_options(dir.path(), "a"), first);
  TrainOptions other = toy_options(dir.path(), "a");
  other.seed = 8;  // the config now says another seed: the checkpoint is not this run's
  TrainControl again;
  again.resume = true;
  try {
    run_toy(other, again);
    FAIL() << "resumed another run's checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("belongs to another run: its seed is \"7\""), std::string::npos) << e.what();
  }
  // Fields that may change on resume (the schedule's length, logging) are accepted.
  TrainOptions longer = toy_options(dir.path(), "a");
  longer.iterations = 24;
  longer.log_every = 5;
  EXPECT_TRUE(run_toy(longer, again).finished);
}

TEST(TrainingLoop, NonFiniteLossOrWeightsStopWithClearErrorAndKeepTheLastGoodCheckpoint) {
  TempDir dir;
  // checkpoint_every 4: last.ckpt is written at 4 and 8; step 10 (0-based 9) gives a NaN loss.
  try {
    run_toy(toy_options(dir.path(), "nan"), TrainControl{}, {}, nullptr, 9);
    FAIL() << "a NaN loss went on";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("training loss became"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("nan at iteration 10"), std::string::npos) << e.what();
  }
  ToyObjective probe(toy_options(dir.path(), "nan"));
  EXPECT_EQ(probe.load_checkpoint(dir / "nan/last.ckpt", nullptr).iteration, 8);
  // The update of step 8 turns the weights to NaN: its write is refused, the one at 4 stays.
  try {
    run_toy(toy_options(dir.path(), "inf"), TrainControl{}, {}, nullptr, -1, 7);
    FAIL() << "non-finite weights were written";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the weights became non-finite at iteration 8"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(probe.load_checkpoint(dir / "inf/last.ckpt", nullptr).iteration, 4);
}

TEST(TrainingLoop, NewRunRefusesADirectoryHoldingOneAndResumeNeedsOne) {
  TempDir dir;
  run_toy(toy_options(dir.path(), "a"), TrainControl{});
  EXPECT_THROW(run_toy(toy_options(dir.path(), "a"), TrainControl{}), UsageError);
  TrainControl resume;
  resume.resume = true;
  try {
    run_toy(toy_options(dir.path(), "none"), resume);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nothing to resume"), std::string::npos);
  }
}

TEST(RunDirectory, ASecondProcessOnTheRunIsRefusedUntilTheFirstLetsGo) {
  TempDir dir;
  RunDirectory::Options o;
  o.dir = (dir / "run");
  const Logger quiet(LogLevel::kQuiet);
  {
    const RunDirectory first(o, quiet);
    try {
      const RunDirectory second(o, quiet);
      FAIL() << "two holders of one run directory";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("another process is training"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(RunDirectory(o, quiet));
}

TEST(RunDirectory, ANonWriterWritesNothingAndCreatesNothing) {
  TempDir dir;
  RunDirectory::Options o;
  o.dir = (dir / "run");
  o.subfolders = {"samples"};
  o.writer = false;
  const RunDirectory run(o, Logger(LogLevel::kQuiet));
  bool called = false;
  run.write("last.ckpt", [&](const std::string&) { called = true; });
  run.write_text("config.json", "{}");
  EXPECT_FALSE(called);
  EXPECT_FALSE(fs::exists(dir / "run"));
}

TEST(RunDirectory, RefusesARunInsideAnInputAndRemovesStaleTemporaries) {
  TempDir dir;
  fs::create_directories(dir / "data");
  RunDirectory::Options o;
  o.dir = (dir / "data/../data/run");
  o.inputs = {{"training folder", (dir / "data")}};
  try {
    RunDirectory run(o, Logger(LogLevel::kQuiet));
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("lies inside the training folder"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "data/run"));
  fs::create_directories(dir / "run");
  const std::string stale = (dir / "run/.last.tmp-999999-1.ckpt");
  write_file_atomically(stale, "partial");
  o.dir = (dir / "run");
  o.inputs.clear();
  RunDirectory run(o, Logger(LogLevel::kQuiet));
  EXPECT_FALSE(fs::exists(stale));
}

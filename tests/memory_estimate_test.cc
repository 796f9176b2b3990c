// The memory a training step needs, estimated from the layer plan before anything runs, against
// the peak RSS of a real run; and the refusal of a run that cannot fit (it was killed by the
// kernel's OOM killer mid-step, rc 137).
#include <sys/resource.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "nets/models.h"
#include "train/memory_estimate.h"
#include "util/error.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using bottleneck::test::run_cli;
using bottleneck::test::TempDir;

namespace {
TrainOptions options_for(const std::vector<int>& widths, int batch, int patch) {
  TrainOptions o;
  o.data_dir = "d";
  o.out_dir = "o";
  o.arch.widths = widths;
  o.patches.batch = batch;
  o.patches.patch = patch;
  return o;
}
}  // namespace

// Measured: the peak RSS of a real run of a few steps, where the step's activations are most
// of the memory. The estimate must be within 2x of it either way.
TEST(MemoryEstimate, IsWithinTwiceTheMeasuredPeakOfARealRun) {
  TempDir dir;
  test::write_synthetic_images(dir / "train", 2, 1, 160, 160, 1);
  const TrainOptions o = options_for({16, 32}, 32, 128);
  const TrainingMemoryEstimate e = estimate_training_memory(o);
  const auto r = run_cli("train --quiet --threads 1 --data " + dir / "train" + " --out " + dir / "run" +
                         " --arch unet --widths 16,32 --batch 32 --patch 128 --iters 3 --val-every 1000");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  rusage usage{};
  ASSERT_EQ(getrusage(RUSAGE_CHILDREN, &usage), 0);
  const double measured = static_cast<double>(usage.ru_maxrss) * 1024;  // ru_maxrss is in KB
  const double ratio = static_cast<double>(e.total()) / measured;
  std::cout << "estimate " << memory_text(e.total()) << " (activations " << memory_text(e.activations)
            << ", parameters " << memory_text(e.parameters) << ", batches " << memory_text(e.batches) << ", runtime "
            << memory_text(e.runtime) << "), measured peak RSS " << memory_text(static_cast<int64_t>(measured))
            << ", ratio " << ratio << "\n";
  EXPECT_GT(e.activations, e.runtime) << "the run measures the runtime more than the estimate";
  EXPECT_GT(ratio, 0.5);
  EXPECT_LT(ratio, 2.0);
}

TEST(MemoryEstimate, GrowsWithBatchAndPatchAndCountsParameters) {
  const TrainingMemoryEstimate a = estimate_training_memory(options_for({32, 64, 128}, 8, 64));
  const TrainingMemoryEstimate b = estimate_training_memory(options_for({32, 64, 128}, 16, 64));
  const TrainingMemoryEstimate c = estimate_training_memory(options_for({32, 64, 128}, 8, 128));
  EXPECT_DOUBLE_EQ(static_cast<double>(b.activations), 2.0 * a.activations);
  EXPECT_DOUBLE_EQ(static_cast<double>(c.activations), 4.0 * a.activations);
  EXPECT_EQ(a.parameters, b.parameters);
  // 16 bytes a parameter (weights, gradients, Adam's two moments), counted as the modules hold them.
  for (const char* upsample : {"transposed", "bilinear"}) {
    TrainOptions o = options_for({32, 64, 128}, 8, 64);
    o.arch.upsample = parse_upsample(upsample);
    int64_t parameters = 0;
    for (const auto& p : make_model(o.arch)->parameters()) parameters += p.numel();
    EXPECT_EQ(estimate_training_memory(o).parameters, 16 * parameters) << upsample;
  }
  TrainOptions bf16 = options_for({32, 64, 128}, 8, 64);
  bf16.precision = "bf16";
  EXPECT_LT(estimate_training_memory(bf16).activations, a.activations);
  // Far past any machine: saturates instead of overflowing.
  const TrainingMemoryEstimate huge = estimate_training_memory(options_for({4096, 4096}, 2147483647, 4096));
  EXPECT_GT(huge.total(), 0);
}

TEST(MemoryEstimate, RefusesWhatCannotFitNamingBothNumbers) {
  const TrainOptions o = options_for({32, 64, 128}, 64, 256);
  const int64_t needed = estimate_training_memory(o).total();
  EXPECT_NO_THROW(refuse_training_that_cannot_fit(o, needed));
  EXPECT_NO_THROW(refuse_training_that_cannot_fit(o, 0));  // unknown: no refusal
  try {
    refuse_training_that_cannot_fit(o, int64_t{1} << 30);
    FAIL() << "accepted";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("a training step of 64 patches of 256 x 256 needs about " + memory_text(needed)), std::string::npos)
        << what;
    EXPECT_NE(what.find("but only 1.00 GB is available (MemAvailable)"), std::string::npos) << what;
  }
  EXPECT_GT(available_memory_bytes(), int64_t{1} << 20);  // this machine has /proc/meminfo
}

// The command: refused before the run directory exists, with the numbers, exit 2.
TEST(MemoryEstimate, TheCliRefusesABatchThatCannotFitBeforeStarting) {
  TempDir dir;
  test::write_synthetic_images(dir / "train", 2, 1, 64, 64, 1);
  const auto r = run_cli("train --data " + dir / "train" + " --out " + dir / "run" + " --batch 100000 --patch 32");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("train: a training step of 100000 patches of 32 x 32 needs about "), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(" GB is available (MemAvailable): use a smaller batch or patch"), std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir / "run"));
}

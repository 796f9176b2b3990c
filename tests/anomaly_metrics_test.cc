// The anomaly figures against hand-computed values, and the latents files (CSV, and NPY read
// back by numpy).

#include <cmath>
#include <fstream>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "anomaly/anomaly_metrics.h"
#include "anomaly/latent_io.h"
#include "anomaly/reconstruct_trainer.h"
#include "test_util.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace bottleneck {
namespace {

TEST(AnomalyMetrics, AurocCountsPairsAndHalvesTies) {
  // Pairs above: 0.9 -> 4, 0.8 -> 4, 0.4 -> 3 and one tie (0.5): 11.5 of 12.
  EXPECT_NEAR(auroc({0.9f, 0.8f, 0.4f}, {0.1f, 0.4f, 0.3f, 0.2f}), 11.5 / 12, 1e-12);
  EXPECT_DOUBLE_EQ(auroc({1, 2}, {3, 4}), 0.0);
  EXPECT_DOUBLE_EQ(auroc({5, 5}, {5}), 0.5);
  EXPECT_TRUE(std::isnan(auroc({}, {1})));
}

// Normal pixels 0.0 .. 0.9; region A = {0.95, 0.05}, region B = {0.75}. Up to FPR 0.3 the
// thresholds are 0.9 (FPR 0), 0.8 (0.1), 0.7 (0.2), 0.6 (0.3): PRO 0.25, 0.25, 0.75, 0.75;
// trapezoids 0.025 + 0.05 + 0.075 = 0.15, over 0.3 = 0.5. Pixel AUROC: 0.95 beats 10, 0.05
// beats 1, 0.75 beats 8 of the 10 normal pixels: 19 / 30.
TEST(AnomalyMetrics, ProAndPixelAurocMatchHandComputedValues) {
  PixelScores p;
  for (int i = 0; i < 10; ++i) p.normal.push_back(0.1f * static_cast<float>(i));
  p.regions = {{0.95f, 0.05f}, {0.75f}};
  EXPECT_NEAR(pro_score(p, 0.3), 0.5, 1e-9);
  EXPECT_NEAR(pixel_auroc(p), 19.0 / 30, 1e-9);
  // A perfect map: every region pixel above every normal one.
  PixelScores perfect;
  perfect.normal = {0.1f, 0.2f};
  perfect.regions = {{0.9f}, {0.8f, 0.7f}};
  EXPECT_NEAR(pro_score(perfect, 0.3), 1.0, 1e-9);
  EXPECT_TRUE(std::isnan(pro_score(PixelScores{}, 0.3)));
}

TEST(AnomalyMetrics, ThresholdHoldsTheFalsePositiveRate) {
  std::vector<float> normal(1000);
  std::iota(normal.begin(), normal.end(), 0.0f);
  std::shuffle(normal.begin(), normal.end(), std::mt19937(7));
  for (double fpr : {0.0, 0.01, 0.05, 0.333}) {
    const double t = threshold_at_fpr(normal, fpr);
    const auto above = std::count_if(normal.begin(), normal.end(), [&](float s) { return s > t; });
    EXPECT_EQ(above, static_cast<long>(std::floor(fpr * 1000 + 1e-9))) << "fpr " << fpr;
  }
  EXPECT_THROW(threshold_at_fpr({}, 0.01), Error);
  EXPECT_THROW(threshold_at_fpr({1}, 1.0), UsageError);
}

TEST(AnomalyMetrics, ScoreStatsAreExact) {
  const ScoreStats s = score_stats({4, 1, 3, 2});
  EXPECT_EQ(s.count, 4);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_DOUBLE_EQ(s.std, std::sqrt(1.25));
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 4);
  EXPECT_DOUBLE_EQ(s.p50, 2);
  EXPECT_DOUBLE_EQ(s.p99, 4);
}

LatentTable sample_table() {
  LatentTable t;
  t.files = {"a.png", "dir/with,comma \"q\".png", "c.png"};
  t.dims = 4;
  for (int i = 0; i < 12; ++i) t.values.push_back(static_cast<float>(std::sin(i * 1.7) * std::pow(10.0, i % 5 - 2)));
  return t;
}

TEST(LatentIo, CsvAndNpyRoundTrip) {
  test::TempDir dir;
  const LatentTable t = sample_table();
  for (const std::string name : {"z.csv", "z.npy"}) {
    write_latents(dir / name, t);
    const LatentTable back = read_latents(dir / name);
    EXPECT_EQ(back.files, t.files) << name;
    EXPECT_EQ(back.dims, t.dims) << name;
    EXPECT_EQ(back.values, t.values) << name;  // exact: 9 significant digits in the CSV
  }
  EXPECT_THROW(write_latents(dir / "z.txt", t), UsageError);
}

TEST(LatentIo, DamagedFilesAreRefusedByName) {
  test::TempDir dir;
  write_file_atomically(dir / "bad.csv", std::string("file,z0,z1\na.png,1,2\nb.png,3\n"));
  try {
    read_latents(dir / "bad.csv");
    FAIL() << "a short row was read";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorrupt);
    EXPECT_NE(std::string(e.what()).find("bad.csv: row 3 has 1 values"), std::string::npos) << e.what();
  }
  std::string npy = npy_bytes({1, 2, 3, 4}, 2, 2);
  write_file_atomically(dir / "short.npy", npy.substr(0, npy.size() - 3));
  EXPECT_THROW(read_latents(dir / "short.npy"), Error);
  write_file_atomically(dir / "junk.npy", std::string("not numpy at all"));
  EXPECT_THROW(read_latents(dir / "junk.npy"), Error);
}

TEST(LatentIo, NumpyLoadsTheNpyAndItEqualsTheCsv) {
  if (!test::system_python_has("numpy")) GTEST_SKIP() << "no numpy for " << test::kSystemPython;
  test::TempDir dir;
  const LatentTable t = sample_table();
  write_latents(dir / "z.npy", t);
  write_latents(dir / "z.csv", t);
  const std::string script =
      "import csv, numpy as np\n"
      "a = np.load('" + dir / "z.npy" + "')\n"
      "assert a.dtype == np.float32 and a.shape == (3, 4), (a.dtype, a.shape)\n"
      "rows = list(csv.reader(open('" + dir / "z.csv" + "')))\n"
      "assert rows[0] == ['file', 'z0', 'z1', 'z2', 'z3'], rows[0]\n"
      "names = open('" + dir / "z.npy.files.txt" + "').read().splitlines()\n"
      "assert names == [r[0] for r in rows[1:]], names\n"
      "b = np.array([[float(v) for v in r[1:]] for r in rows[1:]], dtype=np.float32)\n"
      "assert np.array_equal(a, b), (a, b)\n"
      "print('numpy ok')\n";
  std::ofstream(dir / "check.py") << script;
  const test::CommandResult r = test::run_command(std::string(test::kSystemPython) + " " + (dir / "check.py"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("numpy ok"), std::string::npos) << r.output;
}

TEST(FashionMnistSource, ParsesDirectoryAndClasses) {
  const FashionMnistSource s = parse_fashion_mnist_source("fashion-mnist:/data/fm?classes=0,3");
  EXPECT_EQ(s.dir, "/data/fm");
  EXPECT_EQ(s.classes, (std::vector<int>{0, 3}));
  EXPECT_TRUE(parse_fashion_mnist_source("fashion-mnist:/data/fm").classes.empty());
  EXPECT_THROW(parse_fashion_mnist_source("fashion-mnist:/d?classes=12"), UsageError);
  EXPECT_THROW(parse_fashion_mnist_source("fashion-mnist:/d?labels=1"), UsageError);
  EXPECT_FALSE(is_fashion_mnist_source("/data/folder"));
}

}  // namespace
}  // namespace bottleneck

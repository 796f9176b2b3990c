#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "test_util.h"
#include "train/metrics_log.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using test::TempDir;

namespace {
const std::vector<std::string> kColumns = {"iteration", "lr", "loss", "val_psnr", "elapsed_s"};
}

TEST(MetricsLog, WritesEmptyCellsForNotMeasuredAndReadsThemBack) {
  TempDir dir;
  const std::string path = (dir / "metrics.csv");
  MetricsLog m(path, kColumns);
  m.add({50, 1e-3, 0.0123456789, NAN, 12.5});
  m.add({100, 5e-4, 0.01, 28.25});  // short: padded with empty cells
  m.write();
  EXPECT_EQ(read_file(path),
            "iteration,lr,loss,val_psnr,elapsed_s\n"
            "50,0.001,0.012345679,,12.5\n"
            "100,0.0005,0.01,28.25,\n");
  MetricsLog again(path, kColumns);
  const auto loaded = again.load_until(1000);
  EXPECT_EQ(loaded.rows, 2);
  EXPECT_EQ(loaded.damaged, 0);
  EXPECT_DOUBLE_EQ(again.last("val_psnr"), 28.25);
  EXPECT_DOUBLE_EQ(again.last("elapsed_s"), 12.5);  // the latest finite one
  std::vector<double> it, v;
  again.series("loss", &it, &v);
  EXPECT_EQ(it, (std::vector<double>{50, 100}));
  EXPECT_THROW(again.series("nope", &it, &v), Error);
}

TEST(MetricsLog, ResumeDropsRowsPastTheCheckpointAndMatchesColumnsByName) {
  TempDir dir;
  const std::string path = (dir / "metrics.csv");
  write_file_atomically(path, "iteration,loss,old_column,lr\n10,0.5,7,0.1\n20,0.4,7,0.1\n30,0.3,7,0.1\n");
  MetricsLog m(path, kColumns);
  const auto loaded = m.load_until(20);
  EXPECT_EQ(loaded.rows, 2);
  EXPECT_EQ(loaded.dropped, 1);
  EXPECT_EQ(loaded.damaged, 0);
  m.write();
  EXPECT_EQ(read_file(path), "iteration,lr,loss,val_psnr,elapsed_s\n10,0.1,0.5,,\n20,0.1,0.4,,\n");
}

TEST(MetricsLog, DamagedLinesAreLeftOutButTheFileAsFoundIsKept) {
  TempDir dir;
  const std::string path = (dir / "metrics.csv");
  const std::string garbled = "iteration,lr,loss,val_psnr,elapsed_s\n10,0.1,0.5,,1\n2#0,x,0.4,,2\n30,0.1,0.3\n40,0.1,0.2,,4\n";
  write_file_atomically(path, garbled);
  MetricsLog m(path, kColumns);
  const auto loaded = m.load_until(100);
  EXPECT_EQ(loaded.rows, 2);
  EXPECT_EQ(loaded.damaged, 2);
  ASSERT_EQ(loaded.backup, (dir / "metrics.damaged-1.csv"));
  EXPECT_EQ(read_file(loaded.backup), garbled);
  // A second damaged load keeps the first backup.
  MetricsLog m2(path, kColumns);
  EXPECT_EQ(m2.load_until(100).backup, (dir / "metrics.damaged-2.csv"));
  // A file with a foreign header counts as damaged, whole.
  write_file_atomically(path, "step,loss\n1,2\n");
  MetricsLog m3(path, kColumns);
  const auto foreign = m3.load_until(100);
  EXPECT_EQ(foreign.rows, 0);
  EXPECT_EQ(foreign.damaged, 1);
  EXPECT_FALSE(foreign.backup.empty());
}

TEST(MetricsLog, MissingFileLoadsNothingAndColumnsMustStartWithIteration) {
  TempDir dir;
  MetricsLog m((dir / "none.csv"), kColumns);
  EXPECT_EQ(m.load_until(5).rows, 0);
  EXPECT_TRUE(std::isnan(m.last("loss")));
  EXPECT_THROW(MetricsLog("x", {"loss"}), Error);
}

#include "data/dataset.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "util/error.h"
#include "image/image_io.h"
#include "test_util.h"

namespace bottleneck {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

NoiseSpec gaussian(double sigma) {
  NoiseSpec spec;
  spec.kind = NoiseKind::kGaussian;
  spec.a = {sigma, sigma};
  return spec;
}

std::vector<torch::Tensor> synthetic_set(int count, int channels, int height, int width) {
  std::vector<torch::Tensor> images;
  for (int i = 0; i < count; ++i) images.push_back(test::synthetic_image(channels, height, width, 100 + i));
  return images;
}

PatchOptions patch_options(int patch, int batch, bool augment = true) {
  PatchOptions o;
  o.patch = patch;
  o.batch = batch;
  o.augment = augment;
  return o;
}

TEST(PatchDataset, BatchHasTheRequestedShapeAndRange) {
  PatchDataset data(synthetic_set(3, 3, 40, 50), {}, patch_options(16, 5));
  EXPECT_EQ(data.size(), 3u);
  EXPECT_EQ(data.channels(), 3);
  EXPECT_FALSE(data.has_pairs());
  TrainBatch b = data.batch(1, 0, gaussian(25));
  EXPECT_EQ(b.index, 0);
  EXPECT_EQ(b.clean.sizes(), torch::IntArrayRef({5, 3, 16, 16}));
  EXPECT_EQ(b.noisy.sizes(), torch::IntArrayRef({5, 3, 16, 16}));
  EXPECT_EQ(b.clean.scalar_type(), torch::kFloat);
  EXPECT_GE(b.clean.min().item<float>(), 0.0f);
  EXPECT_LE(b.clean.max().item<float>(), 1.0f);
  // sigma 25 on the 0-255 scale.
  EXPECT_NEAR((b.noisy - b.clean).std().item<double>(), 25.0 / 255.0, 0.01);
}

TEST(PatchDataset, BatchIsAPureFunctionOfSeedAndIndex) {
  PatchDataset data(synthetic_set(4, 1, 30, 30), {}, patch_options(12, 8));
  TrainBatch a = data.batch(7, 3, gaussian(15)), b = data.batch(7, 3, gaussian(15));
  EXPECT_TRUE(torch::equal(a.clean, b.clean));
  EXPECT_TRUE(torch::equal(a.noisy, b.noisy));
  TrainBatch c = data.batch(7, 4, gaussian(15)), d = data.batch(8, 3, gaussian(15));
  EXPECT_FALSE(torch::equal(a.clean, c.clean));
  EXPECT_FALSE(torch::equal(a.noisy, c.noisy));
  EXPECT_FALSE(torch::equal(a.clean, d.clean));
}

TEST(PatchDataset, AugmentationProducesAllEightTransforms) {
  // An 8 x 8 image with all-different values and a patch of 8: the crop position is fixed, so
  // the distinct patches are exactly the distinct dihedral transforms.
  auto image = torch::arange(64, torch::kFloat).div(64).view({1, 8, 8});
  PatchDataset data({image}, {}, patch_options(8, 16));
  std::set<std::vector<float>> seen;
  for (int64_t i = 0; i < 20; ++i) {
    TrainBatch b = data.batch(1, i, NoiseSpec());
    for (int64_t k = 0; k < b.clean.size(0); ++k) {
      auto p = b.clean[k].contiguous();
      seen.insert(std::vector<float>(p.data_ptr<float>(), p.data_ptr<float>() + p.numel()));
    }
  }
  EXPECT_EQ(seen.size(), 8u);
  PatchDataset plain({image}, {}, patch_options(8, 16, false));
  TrainBatch b = plain.batch(1, 0, NoiseSpec());
  for (int64_t k = 0; k < b.clean.size(0); ++k) EXPECT_TRUE(torch::equal(b.clean[k], image));
}

TEST(PatchDataset, SmallImagesArePadded) {
  auto image = torch::rand({1, 12, 12});
  PatchDataset data({image, torch::rand({3, 5, 6}).narrow(0, 0, 1)}, {}, patch_options(16, 32, false));
  TrainBatch b = data.batch(3, 0, NoiseSpec());
  EXPECT_EQ(b.clean.sizes(), torch::IntArrayRef({32, 1, 16, 16}));
  // 12 -> 16 reflects 2 rows and columns on each side: padded row 0 is image row 2.
  bool found = false;
  for (int64_t k = 0; k < 32; ++k) {
    auto p = b.clean[k][0];
    if (!torch::equal(p.slice(0, 2, 14).slice(1, 2, 14), image[0])) continue;
    found = true;
    EXPECT_TRUE(torch::equal(p[0].slice(0, 2, 14), image[0][2]));
    EXPECT_TRUE(torch::equal(p[15].slice(0, 2, 14), image[0][9]));
  }
  EXPECT_TRUE(found);
}

TEST(PatchDataset, PairedNoisyCropsAlignWithCleanCrops) {
  auto clean = synthetic_set(3, 3, 24, 30);
  clean.push_back(test::synthetic_image(3, 10, 9, 5));  // padded too
  std::vector<torch::Tensor> noisy;
  for (const auto& c : clean) noisy.push_back(c + 0.1);
  PatchDataset data(clean, noisy, patch_options(16, 24));
  EXPECT_TRUE(data.has_pairs());
  for (int64_t i = 0; i < 4; ++i) {
    TrainBatch b = data.batch(9, i, gaussian(50));  // synthetic noise is not used with pairs
    EXPECT_TRUE(torch::equal(b.noisy, b.clean + 0.1));
  }
}

TEST(PatchDataset, ConstructorValidates) {
  EXPECT_THROW(PatchDataset({}, {}, patch_options(16, 4)), Error);
  EXPECT_THROW(PatchDataset(synthetic_set(1, 1, 20, 20), {}, patch_options(4, 4)), UsageError);
  EXPECT_THROW(PatchDataset(synthetic_set(1, 1, 20, 20), {}, patch_options(16, 0)), UsageError);
  std::vector<torch::Tensor> mixed = {test::synthetic_image(1, 20, 20, 1), test::synthetic_image(3, 20, 20, 1)};
  EXPECT_THROW(PatchDataset(mixed, {}, patch_options(16, 4)), Error);
  EXPECT_THROW(PatchDataset(synthetic_set(2, 1, 20, 20), synthetic_set(1, 1, 20, 20), patch_options(16, 4)), Error);
  EXPECT_THROW(PatchDataset(synthetic_set(1, 1, 20, 20), synthetic_set(1, 1, 20, 21), patch_options(16, 4)), Error);
}

TEST(PatchDataset, FromFolderSkipsUnreadableFilesAndMatchesPairs) {
  TempDir dir;
  test::write_synthetic_images(dir / "clean", 3, 3, 20, 24, 1);
  test::write_synthetic_images(dir / "clean/sub", 1, 3, 20, 24, 9);
  std::ofstream(dir / "clean/broken.png") << "not a png";
  std::ostringstream messages;
  Logger log(LogLevel::kQuiet, &messages);
  std::vector<std::string> skipped;
  PatchDataset gray = PatchDataset::from_folder(dir / "clean", "", 1, patch_options(16, 2), log, kDefaultMaxPixels,
                                                &skipped);
  EXPECT_EQ(gray.size(), 4u);
  EXPECT_EQ(gray.channels(), 1);
  const std::string reason = dir / "clean/broken.png" +
      ": not a recognised image (unknown format or corrupt data); PNG, JPEG, BMP, TIFF, WebP and PNM are read";
  EXPECT_EQ(messages.str(), "warning: " + reason + " (skipped)\n");
  EXPECT_EQ(skipped, std::vector<std::string>{reason});

  test::write_synthetic_images(dir / "noisy", 3, 3, 20, 24, 50);
  test::write_synthetic_images(dir / "noisy/sub", 1, 3, 20, 24, 60);
  std::ofstream(dir / "noisy/broken.png") << "not a png either";
  PatchDataset pairs = PatchDataset::from_folder(dir / "clean", dir / "noisy", 3, patch_options(16, 2), log);
  EXPECT_EQ(pairs.size(), 4u);
  EXPECT_TRUE(pairs.has_pairs());

  fs::remove(dir / "noisy/img001.png");
  try {
    PatchDataset::from_folder(dir / "clean", dir / "noisy", 3, patch_options(16, 2), log);
    ADD_FAILURE() << "missing partner accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("clean/img001.png"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("noisy/img001.png"), std::string::npos) << e.what();
  }
  fs::create_directory(dir / "empty");
  EXPECT_THROW(PatchDataset::from_folder(dir / "empty", "", 3, patch_options(16, 2), log), Error);
}

TEST(BatchLoader, ReturnsBatchesInOrderEqualToDirectCalls) {
  PatchDataset data(synthetic_set(3, 1, 32, 32), {}, patch_options(16, 4));
  NoiseSpec noise = gaussian(25);
  std::atomic<int> calls{0};
  auto make = [&](int64_t i) {
    ++calls;
    // Uneven work so that the workers finish out of order.
    std::this_thread::sleep_for(std::chrono::milliseconds((i * 7) % 5));
    return data.batch(42, i, noise);
  };
  {
    BatchLoader loader(make, 5, 2, 3);
    for (int64_t i = 5; i < 25; ++i) {
      TrainBatch b = loader.next();
      ASSERT_EQ(b.index, i);
      TrainBatch direct = data.batch(42, i, noise);
      EXPECT_TRUE(torch::equal(b.clean, direct.clean));
      EXPECT_TRUE(torch::equal(b.noisy, direct.noisy));
    }
  }
  // At most `prefetch` batches beyond those consumed were made.
  EXPECT_LE(calls.load(), 20 + 3);
  BatchLoader inline_loader(make, 0, 0, 1);
  EXPECT_EQ(inline_loader.next().index, 0);
  EXPECT_EQ(inline_loader.next().index, 1);
}

TEST(BatchLoader, WorkerExceptionReachesNextInOrder) {
  auto make = [](int64_t i) {
    if (i == 3) throw Error("batch 3 failed");
    if (i == 6) throw Error("batch 6 failed");
    TrainBatch b;
    b.index = i;
    b.clean = torch::full({1}, static_cast<double>(i));
    return b;
  };
  BatchLoader loader(make, 0, 2, 4);
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(loader.next().index, i);
  for (int repeat = 0; repeat < 2; ++repeat) {
    try {
      loader.next();
      ADD_FAILURE() << "no exception";
    } catch (const Error& e) {
      EXPECT_STREQ(e.what(), "batch 3 failed");
    }
  }
}

TEST(BatchLoader, DestructorDoesNotWaitForQueuedWork) {
  auto make = [](int64_t i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    TrainBatch b;
    b.index = i;
    b.clean = torch::zeros({1});
    return b;
  };
  auto start = std::chrono::steady_clock::now();
  {
    BatchLoader loader(make, 0, 2, 100);
    EXPECT_EQ(loader.next().index, 0);
  }
  { BatchLoader untouched(make, 0, 2, 100); }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(ValidationSet, NamesAreRelativeAndNoiseIsFixed) {
  TempDir dir;
  test::write_synthetic_images(dir / "val", 2, 3, 20, 24, 1);
  test::write_synthetic_images(dir / "val/sub", 1, 3, 18, 16, 5);
  std::ofstream(dir / "val/bad.png") << "garbage";
  std::ostringstream messages;
  Logger log(LogLevel::kQuiet, &messages);
  auto a = load_validation_set(dir / "val", 1, gaussian(25), 11, log);
  auto b = load_validation_set(dir / "val", 1, gaussian(25), 11, log);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].name, "img000.png");
  EXPECT_EQ(a[1].name, "img001.png");
  EXPECT_EQ(a[2].name, "sub/img000.png");
  EXPECT_EQ(a[2].clean.sizes(), torch::IntArrayRef({1, 18, 16}));
  EXPECT_EQ(a[2].noisy.sizes(), torch::IntArrayRef({1, 18, 16}));
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i].noisy, b[i].noisy));
    EXPECT_FALSE(torch::equal(a[i].noisy, a[i].clean));
  }
  EXPECT_NE(messages.str().find("bad.png"), std::string::npos);
  auto c = load_validation_set(dir / "val", 1, gaussian(25), 12, log);
  EXPECT_FALSE(torch::equal(a[0].noisy, c[0].noisy));
  EXPECT_THROW(load_validation_set(dir / "missing", 1, gaussian(25), 11, log), Error);
}

}  // namespace
}  // namespace bottleneck

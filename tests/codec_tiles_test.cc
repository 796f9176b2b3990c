// The codec's tiled transforms (codec/codec_tiles.h): on images of many tiles (small tiles, so
// that every case stays small), the latents equal the whole-image analysis to float rounding and
// their symbols exactly, and the decoded pixels equal the whole-image synthesis within one level.

#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "codec/codec_file.h"
#include "codec/codec_tiles.h"
#include "codec/compressor.h"
#include "image/image_io.h"
#include "inference/tiler.h"
#include "test_util.h"
#include "util/error.h"

namespace bottleneck {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

// An untrained GDN model (N=8, M=12) whose gains are scaled up 24x, so that its latents spread
// over many symbols instead of rounding to the medians.
std::string write_untrained_model(const std::string& path) {
  torch::manual_seed(5);
  CodecSpec spec;
  spec.n = 8;
  spec.m = 12;
  spec.activation = "gdn";
  spec.rates = 2;
  const std::vector<double> lambdas = {0.005, 0.05};
  CodecModel model(spec, lambdas);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters()) {
      if (p.key() == "gain") p.value().mul_(24);
      if (p.key() == "inverse_gain") p.value().div_(24);
    }
  }
  CodecModelInfo meta;
  meta.lambdas = lambdas;
  meta.best_val_rd = std::nan("");
  meta.checkpoint_project_version = "test";
  write_codec_model(path, *model, meta);
  return path;
}

cv::Mat test_image(int channels, int height, int width, uint64_t seed) {
  return tensor_to_mat(test::synthetic_image(channels, height, width, seed), CV_8U);
}

CodecTarget quality(double q) {
  CodecTarget t;
  t.quality = q;
  return t;
}

DecompressedImage decode(LoadedCodec& codec, const std::vector<uint8_t>& bytes, int tile) {
  DecodeOptions o;
  o.tile = tile;
  o.keep_pixels = true;
  return decompress_image(codec, bytes.data(), bytes.size(), "x.bnc", o);
}

// Whole-image and tiled runs of one model on one image: the same file, the same symbols, pixels
// within one level and floats within `float_tolerance`.
void expect_tiled_equals_whole(LoadedCodec& codec, const cv::Mat& image, int tile, double q, double float_tolerance) {
  ASSERT_GT(plan_tiles(image.rows, image.cols, tile, 16, static_cast<int>(codec_tile_margin())).size(), 4u)
      << "the case must span several tiles each way";
  const CompressedImage whole = compress_image(codec, image, quality(q), 0);
  const CompressedImage tiled = compress_image(codec, image, quality(q), tile);
  EXPECT_EQ(whole.bytes, tiled.bytes);  // equal symbols code to equal bytes
  EXPECT_LE(cv::norm(whole.decoded, tiled.decoded, cv::NORM_INF), 1);
  const DecompressedImage a = decode(codec, whole.bytes, 0), b = decode(codec, whole.bytes, tile);
  EXPECT_TRUE(torch::equal(a.symbols, b.symbols));
  EXPECT_GT(a.symbols.abs().max().item<int>(), 2) << "symbols must vary for the test to mean something";
  EXPECT_LE(cv::norm(a.image, b.image, cv::NORM_INF), 1);
  EXPECT_LE((a.pixels - b.pixels).abs().max().item<double>(), float_tolerance);
  // The whole-image decode is the model's own reconstruction, and the encoder's preview is it.
  EXPECT_EQ(cv::norm(a.image, whole.decoded, cv::NORM_INF), 0);
}

TEST(CodecTiles, MarginIsTheReceptiveRadiusRoundedToTheStride) { EXPECT_EQ(codec_tile_margin(), 32); }

TEST(CodecTiles, TiledAnalysisEqualsTheWholeImagesToFloatRounding) {
  TempDir dir;
  LoadedCodec codec = load_codec_model(write_untrained_model(dir / "m.bnm"));
  CodecModelImpl& m = *codec.model;
  torch::NoGradGuard no_grad;
  for (const int channels : {3, 1}) {
    const cv::Mat image = test_image(channels, 150, 181, 3);
    const torch::Tensor whole =
        m.analysis(CodecModelImpl::pad_to_stride(to_channels(mat_to_tensor(image), 3).unsqueeze(0)));
    EXPECT_TRUE(torch::equal(tiled_analysis(m, image, 0), whole));  // one tile: the same computation
    const torch::Tensor tiled = tiled_analysis(m, image, 32);
    ASSERT_EQ(tiled.sizes(), whole.sizes());
    EXPECT_EQ(tiled.size(2), 10);
    EXPECT_EQ(tiled.size(3), 12);
    const double scale = whole.abs().max().item<double>();
    EXPECT_LE((tiled - whole).abs().max().item<double>(), 1e-5 * scale) << channels << " channels";
  }
}

TEST(CodecTiles, SmallTilesGiveTheSameFileAndPixelsWithinOneLevel) {
  TempDir dir;
  LoadedCodec codec = load_codec_model(write_untrained_model(dir / "m.bnm"));
  // Sizes off the tile grid and off the stride: partial tiles at the right and bottom edges.
  expect_tiled_equals_whole(codec, test_image(3, 157, 203, 8), 32, 70, 1e-5);
  expect_tiled_equals_whole(codec, test_image(1, 130, 97, 9), 48, 20, 1e-5);
}

TEST(CodecTiles, ShippedModelTiledEqualsWhole) {
  const std::string path = std::string(BOTTLENECK_SOURCE_DIR) + "/models/codec.bnm";
  if (!fs::exists(path)) GTEST_SKIP() << "no shipped codec model";
  LoadedCodec codec = load_codec_model(path);
  expect_tiled_equals_whole(codec, test_image(3, 200, 264, 4), 64, 75, 1e-4);
}

TEST(CodecTiles, NegativeTileIsAUsageError) {
  TempDir dir;
  LoadedCodec codec = load_codec_model(write_untrained_model(dir / "m.bnm"));
  EXPECT_THROW(compress_image(codec, test_image(3, 16, 16, 1), quality(50), -1), UsageError);
}

}  // namespace
}  // namespace bottleneck

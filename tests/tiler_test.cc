// Tiled inference must equal whole-image inference: plans, odd sizes, depths, channels.
#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "formats/checkpoint.h"
#include "image/image_io.h"
#include "formats/model_file.h"
#include "nets/models.h"
#include "test_util.h"
#include "inference/tiler.h"

using namespace bottleneck;
using bottleneck::test::TempDir;

namespace {

ArchSpec small_arch(int channels, std::vector<int> widths, const std::string& head = "residual",
                    const std::string& upsample = "transposed") {
  ArchSpec spec;
  spec.in_channels = spec.out_channels = channels;
  spec.widths = std::move(widths);
  spec.head = parse_head(head);
  spec.upsample = parse_upsample(upsample);
  return spec;
}

ArchSpec conv_ae_arch(int channels, std::vector<int> widths) {
  ArchSpec spec = small_arch(channels, std::move(widths), "linear");
  spec.kind = ArchKind::kConvAE;
  spec.bottleneck_channels = 4;
  return spec;
}

// An untrained model behind the InferenceModel interface (through a checkpoint on disk, as
// users load them). A linear head makes the outputs vary as much as the features do, so a
// tile seam could not hide below the tolerance.
std::unique_ptr<InferenceModel> saved_model(const TempDir& dir, const ArchSpec& spec, uint64_t seed) {
  torch::manual_seed(seed);
  Autoencoder model = make_model(spec);
  CheckpointInfo info;
  info.arch = spec;
  info.noise = "gaussian:25";
  const std::string path = dir / ("m" + std::to_string(seed) + ".ckpt");
  save_checkpoint(path, *model, nullptr, info);
  return load_model(path, torch::kCPU);
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST(Tiler, CoresPartitionTheImageOnTheGrid) {
  for (auto [h, w, tile, m, margin] : std::vector<std::tuple<int, int, int, int, int>>{
           {37, 53, 16, 4, 10}, {100, 7, 30, 8, 20}, {64, 64, 64, 4, 9}, {513, 1030, 512, 8, 45}}) {
    const auto tiles = plan_tiles(h, w, tile, m, margin);
    torch::Tensor covered = torch::zeros({h, w}, torch::kInt);
    const int pad = (margin + m - 1) / m * m;
    for (const Tile& t : tiles) {
      covered.slice(0, t.core_y0, t.core_y1).slice(1, t.core_x0, t.core_x1) += 1;
      EXPECT_EQ(t.y0 % m, 0);
      EXPECT_EQ(t.x0 % m, 0);
      EXPECT_EQ(t.core_y0 % m, 0);
      EXPECT_EQ(t.core_x0 % m, 0);
      // Interior sides keep a full margin; a side without one lies on the image border.
      EXPECT_TRUE(t.y0 == 0 || t.core_y0 - t.y0 == pad);
      EXPECT_TRUE(t.x0 == 0 || t.core_x0 - t.x0 == pad);
      EXPECT_TRUE(t.y1 == h || t.y1 - t.core_y1 == pad);
      EXPECT_TRUE(t.x1 == w || t.x1 - t.core_x1 == pad);
      EXPECT_LE(t.core_y1 - t.core_y0, (tile + m - 1) / m * m);
    }
    EXPECT_EQ(covered.min().item<int>(), 1) << h << "x" << w;
    EXPECT_EQ(covered.max().item<int>(), 1) << h << "x" << w;
  }
  EXPECT_EQ(plan_tiles(700, 900, 0, 8, 40).size(), 1u);
  EXPECT_EQ(plan_tiles(1030, 1030, 512, 8, 40).size(), 9u);
}

TEST(Tiler, EqualsWholeImageInference) {
  TempDir dir;
  struct Case {
    ArchSpec spec;
    std::vector<int> tiles;
    int size;  // images are about this large, so windows (core + 2 x radius) are interior
  };
  // Receptive radii: 24 for depth 2, 52 for depth 3 (56 with bilinear upsampling).
  const std::vector<Case> cases = {
      {small_arch(1, {8, 16, 16}, "linear"), {16, 24}, 130},             // depth 2, gray
      {small_arch(3, {8, 8, 16, 16}, "linear"), {24, 48}, 220},         // depth 3, colour
      {small_arch(1, {8, 8, 16, 16}, "residual", "bilinear"), {40}, 220},  // bilinear upsampling
      {small_arch(3, {8, 16, 16}, "sigmoid"), {8}, 80},
      {conv_ae_arch(3, {8, 16, 16}), {16}, 100},  // conv-ae: its own (smaller) radius from the plan
  };
  uint64_t seed = 1;
  double worst = 0;
  for (const Case& c : cases) {
    auto model = saved_model(dir, c.spec, seed);
    const int ch = c.spec.in_channels;
    // Odd sizes in both directions, larger than every tile so both directions are split.
    const std::vector<torch::Tensor> images = {test::synthetic_image(ch, c.size - 15, c.size + 7, seed),
                                               test::synthetic_image(ch, c.size + 1, c.size - 23, seed + 1)};
    std::vector<torch::Tensor> whole;
    for (const auto& img : images) whole.push_back(model->forward(img.unsqueeze(0)).squeeze(0));
    for (int tile : c.tiles) {
      for (int batch : {1, 3}) {
        TileOptions o;
        o.tile = tile;
        o.batch = batch;
        const auto tiled = run_tiled(*model, images, o);
        // Some windows must be interior in each direction, or the check would be vacuous.
        const int64_t h = images[0].size(1), w = images[0].size(2);
        bool inner_y = false, inner_x = false;
        for (const Tile& t : plan_tiles(h, w, tile, c.spec.size_multiple(), model->receptive_radius())) {
          inner_y = inner_y || (t.y0 > 0 && t.y1 < h);
          inner_x = inner_x || (t.x0 > 0 && t.x1 < w);
        }
        EXPECT_TRUE(inner_y && inner_x) << "tile " << tile;
        ASSERT_EQ(tiled.size(), images.size());
        for (size_t i = 0; i < images.size(); ++i) {
          ASSERT_EQ(tiled[i].sizes(), images[i].sizes());
          const double d = max_diff(tiled[i], whole[i]);
          worst = std::max(worst, d);
          EXPECT_LE(d, 1e-4) << "depth " << c.spec.depth() << " channels " << ch << " tile " << tile
                             << " image " << i;
        }
      }
    }
    // The check has teeth: without context the seams are visible.
    TileOptions bare;
    bare.tile = c.tiles.front();
    bare.margin = 0;
    EXPECT_GT(max_diff(run_tiled(*model, images, bare)[0], whole[0]), 1e-3);
    ++seed;
  }
  std::cout << "max |tiled - whole| = " << worst << "\n";
}

TEST(Tiler, WholeImageModeAndBatchingGiveTheSameResult) {
  TempDir dir;
  auto model = saved_model(dir, small_arch(1, {8, 16, 16}, "linear"), 7);
  // Several small images of one size (batched together) and one of another.
  std::vector<torch::Tensor> images;
  for (int i = 0; i < 5; ++i) images.push_back(test::synthetic_image(1, 33, 29, 50 + i));
  images.push_back(test::synthetic_image(1, 20, 41, 60));
  TileOptions one;
  one.tile = 0;
  one.batch = 1;
  TileOptions many = one;
  many.batch = 4;
  const auto a = run_tiled(*model, images, one);
  const auto b = run_tiled(*model, images, many);
  for (size_t i = 0; i < images.size(); ++i) {
    EXPECT_LE(max_diff(a[i], b[i]), 1e-5);
    EXPECT_LE(max_diff(a[i], model->forward(images[i].unsqueeze(0)).squeeze(0)), 1e-5);
  }
}

TEST(Tiler, StrengthScalesTheModelsChange) {
  TempDir dir;
  auto model = saved_model(dir, small_arch(3, {8, 16}, "residual"), 9);
  const std::vector<torch::Tensor> images = {test::synthetic_image(3, 40, 52, 70)};
  TileOptions o;
  o.tile = 32;  // several tiles: strength applies per window, before the cores are kept
  const torch::Tensor full = run_tiled(*model, images, o)[0];
  for (double s : {0.0, 0.5, 2.0}) {
    o.strength = s;
    const torch::Tensor out = run_tiled(*model, images, o)[0];
    EXPECT_LE(max_diff(out, images[0] + s * (full - images[0])), 1e-5) << s;
  }
  o.strength = 0;
  EXPECT_LE(max_diff(run_tiled(*model, images, o)[0], images[0]), 1e-7);
}

TEST(Tiler, ChannelMismatchIsHandledPerChannelAndViaLuma) {
  TempDir dir;
  auto gray = saved_model(dir, small_arch(1, {8, 16, 16}, "linear"), 11);
  auto colour = saved_model(dir, small_arch(3, {8, 16, 16}, "linear"), 12);
  const torch::Tensor rgb = test::synthetic_image(3, 30, 26, 3);
  const torch::Tensor g = test::synthetic_image(1, 30, 26, 4);
  TileOptions o;
  o.tile = 16;

  // Colour through the gray model: each plane as its own gray image.
  const torch::Tensor out = denoise_images(*gray, {rgb}, o)[0];
  ASSERT_EQ(out.sizes(), rgb.sizes());
  for (int c = 0; c < 3; ++c) {
    const torch::Tensor expected = gray->forward(rgb.slice(0, c, c + 1).unsqueeze(0)).squeeze(0).clamp(0, 1);
    EXPECT_LE(max_diff(out.slice(0, c, c + 1), expected), 1e-4) << "channel " << c;
  }

  // Gray through the colour model: replicated, denoised, luma kept.
  const torch::Tensor out_g = denoise_images(*colour, {g}, o)[0];
  ASSERT_EQ(out_g.sizes(), g.sizes());
  const torch::Tensor y = colour->forward(g.expand({3, 30, 26}).unsqueeze(0)).squeeze(0);
  const torch::Tensor luma = (0.299 * y[0] + 0.587 * y[1] + 0.114 * y[2]).unsqueeze(0).clamp(0, 1);
  EXPECT_LE(max_diff(out_g, luma), 1e-4);
}

namespace {

// Counts the forward passes of a model and the batch size of each.
class CountingModel : public InferenceModel {
 public:
  explicit CountingModel(InferenceModel& inner) : inner_(inner) {}
  at::Tensor forward(const at::Tensor& x) override {
    batches.push_back(x.size(0));
    return inner_.forward(x);
  }
  const ModelInfo& info() const override { return inner_.info(); }
  std::vector<int64_t> batches;

 private:
  InferenceModel& inner_;
};

}  // namespace

TEST(Tiler, PixelBudgetSplitsPassesWithoutChangingResults) {
  TempDir dir;
  auto model = saved_model(dir, small_arch(1, {8, 16}, "linear"), 8);
  std::vector<torch::Tensor> images;
  for (int i = 0; i < 5; ++i) images.push_back(test::synthetic_image(1, 32, 24, 70 + i));
  TileOptions unlimited;
  unlimited.tile = 0;
  unlimited.batch = 4;
  unlimited.batch_pixels = 0;
  TileOptions budget = unlimited;
  budget.batch_pixels = 2 * 32 * 24 + 1;  // two windows of 32 x 24 per pass
  CountingModel a(*model), b(*model);
  const auto ra = run_tiled(a, images, unlimited);
  const auto rb = run_tiled(b, images, budget);
  EXPECT_EQ(a.batches, (std::vector<int64_t>{4, 1}));
  EXPECT_EQ(b.batches, (std::vector<int64_t>{2, 2, 1}));
  for (size_t i = 0; i < images.size(); ++i) EXPECT_LE(max_diff(ra[i], rb[i]), 1e-5);
  // A budget below one window still runs every window, one per pass.
  TileOptions tiny = unlimited;
  tiny.batch_pixels = 10;
  CountingModel c(*model);
  run_tiled(c, images, tiny);
  EXPECT_EQ(c.batches, (std::vector<int64_t>(5, 1)));
}

TEST(Tiler, OptimisedCpuInferenceEqualsTheNativeNetwork) {
  // load_model runs fp32 CPU models as frozen, oneDNN-optimised TorchScript; it must compute
  // what the native modules compute, for every upsampling and head.
  TempDir dir;
  int seed = 20;
  for (const auto& spec : {small_arch(1, {8, 16, 16}, "linear"), small_arch(3, {8, 16}, "residual", "bilinear"),
                           small_arch(3, {8, 16, 32}, "sigmoid")}) {
    torch::manual_seed(seed);
    Autoencoder net = make_model(spec);
    CheckpointInfo info;
    info.arch = spec;
    const std::string path = dir / ("o" + std::to_string(seed++) + ".ckpt");
    save_checkpoint(path, *net, nullptr, info);
    LoadOptions native_options;
    native_options.optimize = false;
    auto optimised = load_model(path, torch::kCPU);
    auto native = load_model(path, torch::kCPU, native_options);
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::rand({2, spec.in_channels, 37, 50});
    const torch::Tensor a = optimised->forward(x), b = native->forward(x);
    EXPECT_EQ(a.sizes(), b.sizes());
    EXPECT_LE(max_diff(a, b), 1e-5) << to_json(spec);
  }
}

// denoise_mats converts a window at a time; its outputs must be exactly those of the float path
// (convert the whole image, denoise, round), for every depth and channel combination.
TEST(Tiler, DecodedImagesGiveExactlyTheFloatPathsSamples) {
  TempDir dir;
  auto gray = saved_model(dir, small_arch(1, {8, 16, 16}, "linear"), 21);
  auto colour = saved_model(dir, small_arch(3, {8, 16, 16}, "linear"), 22);
  auto to_mat = [](int channels, int depth, uint64_t seed) {
    return tensor_to_mat(test::synthetic_image(channels, 37, 29, seed), depth);
  };
  struct Case {
    InferenceModel* model;
    std::vector<cv::Mat> images;
  };
  const std::vector<Case> cases = {
      {gray.get(), {to_mat(1, CV_8U, 1), to_mat(1, CV_8U, 2), to_mat(1, CV_16U, 3)}},
      {gray.get(), {to_mat(3, CV_8U, 4)}},                       // colour, plane by plane
      {colour.get(), {to_mat(3, CV_8U, 5), to_mat(3, CV_16U, 6), to_mat(3, CV_32F, 7)}},
      {colour.get(), {to_mat(1, CV_8U, 8)}},                     // gray, via luma
  };
  for (int tile : {0, 16}) {
    TileOptions o;
    o.tile = tile;
    o.batch = 3;
    for (const Case& c : cases) {
      std::vector<torch::Tensor> tensors;
      for (const cv::Mat& m : c.images) tensors.push_back(mat_to_tensor(m));
      const std::vector<torch::Tensor> expected = denoise_images(*c.model, tensors, o);
      const std::vector<cv::Mat> got = denoise_mats(*c.model, c.images, o);
      ASSERT_EQ(got.size(), c.images.size());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i].type(), c.images[i].type());
        ASSERT_EQ(got[i].size(), c.images[i].size());
        const cv::Mat want = tensor_to_mat(expected[i], c.images[i].depth());
        cv::Mat diff;
        cv::absdiff(got[i], want, diff);
        double worst = 0;
        cv::minMaxLoc(diff.reshape(1), nullptr, &worst);
        EXPECT_EQ(worst, 0.0) << "tile " << tile << " channels " << c.images[i].channels() << " depth "
                              << c.images[i].depth() << " model " << c.model->channels();
        // Not vacuous: the model changed the image.
        cv::absdiff(got[i], c.images[i], diff);
        EXPECT_GT(cv::countNonZero(diff.reshape(1)), 0);
      }
    }
  }
}

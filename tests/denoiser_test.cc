// `bottleneck denoise` end to end: tree mirroring, formats, failures, resuming, safety, quality.
#include <filesystem>
#include <fstream>
#include <regex>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include "util/atomic_file.h"
#include "formats/checkpoint.h"
#include "report/comparison.h"
#include "denoise/denoiser.h"
#include "image/image_io.h"
#include "image/metrics.h"
#include "formats/model_file.h"
#include "nets/models.h"
#include "data/noise.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using bottleneck::test::run_cli;
using bottleneck::test::TempDir;

namespace {

// An untrained colour model with a linear head (its output differs visibly from its input).
std::string untrained_model(const TempDir& dir, int channels = 3) {
  ArchSpec spec;
  spec.in_channels = spec.out_channels = channels;
  spec.widths = {8, 16};
  spec.head = Head::kLinear;
  torch::manual_seed(3);
  Autoencoder model = make_model(spec);
  CheckpointInfo info;
  info.arch = spec;
  const std::string path = dir / "model.ckpt";
  save_checkpoint(path, *model, nullptr, info);
  return path;
}

void write_mat(const std::string& path, const cv::Mat& mat) {
  fs::create_directories(fs::path(path).parent_path());
  ASSERT_TRUE(cv::imwrite(path, mat)) << path;
}

cv::Mat synthetic_mat(int channels, int h, int w, uint64_t seed, int depth = CV_8U) {
  return tensor_to_mat(test::synthetic_image(channels, h, w, seed), depth);
}

std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[e.path().lexically_relative(dir).generic_string()] = read_file(e.path().string());
  return files;
}

// "denoised 2, skipped 1, failed 0" -> {2, 1, 0}
std::vector<int> counts(const std::string& output) {
  std::smatch m;
  if (!std::regex_search(output, m, std::regex("denoised (\\d+), skipped (\\d+), failed (\\d+) \\(")))
    return {};
  return {std::stoi(m[1]), std::stoi(m[2]), std::stoi(m[3])};
}

const std::string kFlags = " --threads 1 ";

}  // namespace

TEST(Denoise, MirrorsTheTreeKeepingFormatDepthChannelsAndAlpha) {
  TempDir dir;
  const std::string model = untrained_model(dir);
  const std::string in = dir / "in";
  write_mat(in + "/a.png", synthetic_mat(3, 70, 90, 1));
  write_mat(in + "/sub/b16.png", synthetic_mat(3, 50, 41, 2, CV_16U));
  write_mat(in + "/sub/c.jpg", synthetic_mat(3, 40, 64, 3));
  write_mat(in + "/sub/deeper/d.tif", synthetic_mat(3, 33, 47, 4));
  cv::Mat rgba;
  cv::Mat alpha(60, 52, CV_8U);
  cv::randu(alpha, 0, 256);
  cv::merge(std::vector<cv::Mat>{synthetic_mat(1, 60, 52, 5), synthetic_mat(1, 60, 52, 6), synthetic_mat(1, 60, 52, 7), alpha}, rgba);
  write_mat(in + "/e_rgba.png", rgba);
  write_mat(in + "/sub/f_gray.png", synthetic_mat(1, 45, 77, 8));
  const auto before = snapshot(in);

  const auto r = run_cli("denoise --model " + model + " " + in + " " + dir / "out" + " --tile 32" + kFlags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counts(r.output), (std::vector<int>{6, 0, 0})) << r.output;
  EXPECT_EQ(snapshot(in), before) << "inputs must never change";

  auto model_ptr = load_model(model, torch::kCPU);
  TileOptions tiles;
  tiles.tile = 32;
  for (const std::string name : {"a.png", "sub/b16.png", "sub/c.jpg", "sub/deeper/d.tif", "e_rgba.png", "sub/f_gray.png"}) {
    SCOPED_TRACE(name);
    const cv::Mat src = cv::imread(in + "/" + name, cv::IMREAD_UNCHANGED);
    const cv::Mat out = cv::imread(dir / "out/" + name, cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(out.size(), src.size());
    EXPECT_EQ(out.depth(), src.depth());
    EXPECT_EQ(out.channels(), src.channels());
    if (src.channels() == 4) {
      cv::Mat a, b;
      cv::extractChannel(src, a, 3);
      cv::extractChannel(out, b, 3);
      EXPECT_EQ(cv::countNonZero(a != b), 0) << "alpha must pass through untouched";
    }
    if (name.find(".jpg") == std::string::npos) {  // lossless: the pixels are the model's, rounded
      const ImageData loaded = load_image(in + "/" + name);
      const torch::Tensor expected = denoise_images(*model_ptr, {loaded.pixels}, tiles)[0];
      const double step = src.depth() == CV_16U ? 1.0 / 65535 : 1.0 / 255;
      EXPECT_LE((mat_to_tensor(out) - expected).abs().max().item<double>(), 0.5 * step + 1e-6);
      EXPECT_GT((expected - loaded.pixels).abs().max().item<double>(), 0.05) << "the model must change the image";
    }
  }
}

TEST(Denoise, BadFilesFailByNameAndTheRestAreWritten) {
  TempDir dir;
  const std::string model = untrained_model(dir, 1);
  const std::string in = dir / "in";
  write_mat(in + "/good1.png", synthetic_mat(1, 40, 40, 1));
  write_mat(in + "/sub/good2.png", synthetic_mat(3, 30, 50, 2));
  const std::string png = read_file(in + "/good1.png");
  write_file_atomically(in + "/corrupt.png", png.substr(0, png.size() / 2));
  write_file_atomically(in + "/sub/empty.png", "");
  write_file_atomically(in + "/text.png", "this is not an image\n");
  write_mat(in + "/big.png", synthetic_mat(1, 50, 50, 3));  // over --max-pixels

  const auto r = run_cli("denoise --model " + model + " --input " + in + " --output " + dir / "out" +
                         " --max-pixels 2000" + kFlags);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(counts(r.output), (std::vector<int>{2, 0, 4})) << r.output;
  EXPECT_NE(r.output.find("big.png: image is 50x50 = 2500 pixels"), std::string::npos) << r.output;
  for (const std::string bad : {"corrupt.png", "sub/empty.png", "text.png", "big.png"}) {
    EXPECT_NE(r.output.find(in + "/" + bad + ": "), std::string::npos) << bad << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir / "out/" + bad)) << bad;
  }
  for (const std::string good : {"good1.png", "sub/good2.png"}) {
    EXPECT_EQ(r.output.find(good + ":"), std::string::npos) << r.output;
    EXPECT_TRUE(fs::exists(dir / "out/" + good)) << good;
  }
  // No temporaries left behind.
  for (const auto& e : fs::recursive_directory_iterator(dir / "out"))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(Denoise, SkipExistingRedoesOnlyMissingOutputs) {
  TempDir dir;
  const std::string model = untrained_model(dir, 1);
  const std::string in = dir / "in";
  for (int i = 0; i < 3; ++i) write_mat(in + "/img" + std::to_string(i) + ".png", synthetic_mat(1, 40, 36, 10 + i));
  const std::string cmd = "denoise --model " + model + " " + in + " " + dir / "out" + " --compare" + kFlags;
  auto r = run_cli(cmd);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counts(r.output), (std::vector<int>{3, 0, 0})) << r.output;

  // A marker in one output shows whether it is rewritten; another output (only its
  // comparison) is gone, so that file must be redone.
  write_file_atomically(dir / "out/img0.png", "marker");
  fs::remove(dir / "out/img2.compare.png");
  const std::string kept = read_file(dir / "out/img1.png");
  r = run_cli(cmd + " --skip-existing");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counts(r.output), (std::vector<int>{1, 2, 0})) << r.output;
  EXPECT_EQ(read_file(dir / "out/img0.png"), "marker");
  EXPECT_EQ(read_file(dir / "out/img1.png"), kept);
  EXPECT_TRUE(fs::exists(dir / "out/img2.compare.png"));

  r = run_cli(cmd + " --skip-existing");
  EXPECT_EQ(counts(r.output), (std::vector<int>{0, 3, 0})) << r.output;
}

TEST(Denoise, RefusesToWriteIntoTheInputTreeWithoutSuffix) {
  TempDir dir;
  const std::string model = untrained_model(dir, 1);
  const std::string in = dir / "in";
  write_mat(in + "/a.png", synthetic_mat(1, 40, 36, 1));
  write_mat(in + "/sub/b.png", synthetic_mat(1, 40, 36, 2));
  const auto before = snapshot(in);

  auto r = run_cli("denoise --model " + model + " " + in + " " + in + kFlags);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--suffix"), std::string::npos) << r.output;
  r = run_cli("denoise --model " + model + " " + in + " " + in + "/sub" + kFlags);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_cli("denoise --model " + model + " " + in + "/a.png " + in + kFlags);  // a lone file too
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(snapshot(in), before);

  // With a suffix, outputs go beside the inputs, and a second run does not take them as inputs
  // (it replaces them only when told to: path_safety_test).
  for (int run = 0; run < 2; ++run) {
    r = run_cli("denoise --model " + model + " " + in + " " + in + " --suffix dn --compare" + kFlags +
                (run > 0 ? " --overwrite" : ""));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(counts(r.output), (std::vector<int>{2, 0, 0})) << r.output;
  }
  auto after = snapshot(in);
  EXPECT_EQ(after.size(), 6u);
  for (const auto& [name, bytes] : before) EXPECT_EQ(after[name], bytes) << name;
  EXPECT_TRUE(after.count("a.dn.png") && after.count("sub/b.dn.png") && after.count("sub/b.dn.compare.png"));

  // Usage error: no output.
  r = run_cli("denoise --model " + model + " " + in + kFlags);
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

TEST(Denoise, TrainedModelBeatsTheNoisyInputAndDrawsComparisons) {
  TempDir dir;
  test::write_synthetic_images(dir / "train", 16, 1, 64, 64, 100);
  auto r = run_cli("train --data " + dir / "train" + " --noise gaussian:25 --out " + dir / "run" +
                   " --arch unet --widths 16,32 --patch 32 --batch 8 --iters 250 --lr 3e-3 --val-every 1000" + kFlags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  test::write_synthetic_images(dir / "in", 3, 1, 80, 96, 500);

  r = run_cli("denoise --model " + dir / "run/last.ckpt" + " " + dir / "in" + " " + dir / "out" +
              " --add-noise gaussian:25 --compare --seed 7 --batch 2" + kFlags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const NoiseSpec spec = parse_noise("gaussian:25");
  double noisy_psnr = 0, out_psnr = 0;
  for (int i = 0; i < 3; ++i) {
    const std::string name = "img00" + std::to_string(i) + ".png";
    const torch::Tensor clean = load_image(dir / "in/" + name).pixels;
    const torch::Tensor noisy = add_noise(clean, spec, file_noise_seed(7, name)).clamp(0, 1);
    const torch::Tensor out = load_image(dir / "out/" + name).pixels;
    // Independent PSNR, in double.
    auto db = [&](const torch::Tensor& x) {
      return 10 * std::log10(1.0 / (x.to(torch::kDouble) - clean.to(torch::kDouble)).pow(2).mean().item<double>());
    };
    noisy_psnr += db(noisy) / 3;
    out_psnr += db(out) / 3;
    const cv::Mat strip = cv::imread(dir / "out/img00" + std::to_string(i) + ".compare.png");
    ASSERT_FALSE(strip.empty());
    const int gap = std::clamp(96 / 100, 4, 8);  // make_comparison's gap rule
    EXPECT_EQ(strip.cols, 3 * 96 + 2 * gap);
    EXPECT_GT(strip.rows, 80);
  }
  std::cout << "PSNR noisy " << noisy_psnr << " dB, denoised " << out_psnr << " dB\n";
  EXPECT_NEAR(noisy_psnr, 20.4, 0.6);  // sigma 25 is 20.2 dB before clipping
  EXPECT_GE(out_psnr - noisy_psnr, 2.0) << "noisy " << noisy_psnr << " denoised " << out_psnr;

  // The noise depends on the seed and each file's name only, not on the others present.
  fs::remove(dir / "in/img000.png");
  r = run_cli("denoise --model " + dir / "run/last.ckpt" + " " + dir / "in" + " " + dir / "out2" +
              " --add-noise gaussian:25 --seed 7" + kFlags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_file(dir / "out2/img001.png"), read_file(dir / "out/img001.png"));
}

// Two inputs whose results would land in one file are refused before anything is written,
// naming both.
TEST(Denoise, OutputsThatWouldCollideAreRefusedBeforeAnyWork) {
  TempDir dir;
  const std::string model = untrained_model(dir, 1);
  write_mat(dir / "in/a.png", synthetic_mat(1, 30, 34, 1));
  write_mat(dir / "in/a.compare.png", synthetic_mat(1, 30, 34, 2));
  const std::string base = "denoise --model " + model + " " + dir / "in ";
  auto r = run_cli(base + dir / "out --compare" + kFlags);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(dir / "out/a.compare.png: two inputs would be written here: " + dir / "in/a.compare.png (its denoised image) and " +
                          dir / "in/a.png (its comparison strip)"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "out"));
  r = run_cli(base + dir / "out" + kFlags);  // without comparisons they do not meet
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counts(r.output), (std::vector<int>{2, 0, 0})) << r.output;

  // --format writes every output in one format, so a.jpg and a.png meet in a.png.
  write_mat(dir / "both/a.jpg", synthetic_mat(1, 30, 34, 3));
  write_mat(dir / "both/a.png", synthetic_mat(1, 30, 34, 4));
  write_mat(dir / "both/b.jpg", synthetic_mat(1, 30, 34, 5));
  r = run_cli("denoise --model " + model + " " + dir / "both " + dir / "png --format png" + kFlags);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(dir / "both/a.jpg (its denoised image) and " + dir / "both/a.png"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "png"));
  fs::remove(dir / "both/a.png");
  r = run_cli("denoise --model " + model + " " + dir / "both " + dir / "png --format png" + kFlags);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_file(dir / "png/b.png").substr(1, 3), "PNG");
  EXPECT_FALSE(fs::exists(dir / "png/b.jpg"));
  r = run_cli("denoise --model " + model + " " + dir / "both " + dir / "x --format png/../jpg" + kFlags);
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

// Alpha is carried through where the output format stores it (BMP too); where it cannot
// (--format jpg), the file fails by name instead of losing its transparency. Several pages or
// frames fail by name too.
TEST(Denoise, AlphaIsKeptOrTheFileIsRefusedByName) {
  TempDir dir;
  const std::string model = untrained_model(dir);
  const cv::Mat alpha = synthetic_mat(1, 40, 44, 9);
  ImageSamples bmp;
  bmp.color = synthetic_mat(3, 40, 44, 10);
  bmp.alpha = alpha;
  fs::create_directories(dir / "in");
  save_samples(dir / "in/v4.bmp", bmp);
  cv::Mat rgba;
  cv::merge(std::vector<cv::Mat>{synthetic_mat(1, 40, 44, 11), synthetic_mat(1, 40, 44, 12), synthetic_mat(1, 40, 44, 13), alpha}, rgba);
  write_mat(dir / "in/t.png", rgba);
  cv::Mat opaque;
  cv::merge(std::vector<cv::Mat>{synthetic_mat(3, 40, 44, 14), cv::Mat(40, 44, CV_8U, cv::Scalar(255))}, opaque);
  write_mat(dir / "in/opaque.png", opaque);

  auto r = run_cli("denoise --model " + model + " " + dir / "in " + dir / "out" + kFlags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const std::string name : {"v4.bmp", "t.png"}) {
    const cv::Mat out = cv::imread(dir / "out/" + name, cv::IMREAD_UNCHANGED);
    ASSERT_EQ(out.channels(), 4) << name;
    cv::Mat out_alpha;
    cv::extractChannel(out, out_alpha, 3);
    EXPECT_EQ(cv::countNonZero(out_alpha != alpha), 0) << name << ": alpha must pass through untouched";
  }

  r = run_cli("denoise --model " + model + " " + dir / "in " + dir / "jpg --format jpg" + kFlags);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(counts(r.output), (std::vector<int>{1, 0, 2})) << r.output;
  for (const std::string name : {"v4.bmp", "t.png"}) {
    EXPECT_NE(r.output.find(dir / "in/" + name + ": the image has transparency"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir / ("jpg/" + fs::path(name).stem().string() + ".jpg"))) << name;
  }
  EXPECT_TRUE(fs::exists(dir / "jpg/opaque.jpg")) << "an opaque alpha carries nothing to lose";

  ASSERT_TRUE(cv::imwritemulti(dir / "pages.tif", std::vector<cv::Mat>{synthetic_mat(3, 20, 24, 15), synthetic_mat(3, 20, 24, 16)}));
  r = run_cli("denoise --model " + model + " " + dir / "pages.tif " + dir / "pages" + kFlags);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(dir / "pages.tif: is a TIFF of 2 pages"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "pages/pages.tif"));
}

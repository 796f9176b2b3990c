// Anomaly scoring, calibration and latents on a tiny reconstruction model trained here in a
// few seconds: a painted defect scores above the clean image, the calibrated threshold holds its
// false-positive rate and is applied by score, decode(encode(x)) is the reconstruction, and bad
// files fail by name without stopping the job.

#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include "anomaly/anomaly_jobs.h"
#include "anomaly/anomaly_model.h"
#include "anomaly/latent_gaussian.h"
#include "anomaly/latent_io.h"
#include "anomaly/reconstruct_trainer.h"
#include "formats/exporter.h"
#include "image/image_io.h"
#include "test_util.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace bottleneck {
namespace {

constexpr int kSize = 32;

// Normal images: smooth random blobs on a gradient, 32 x 32 gray (a texture the tiny network
// learns in a few hundred steps).
torch::Tensor normal_image(uint64_t seed) {
  torch::manual_seed(seed);
  const torch::Tensor y = torch::linspace(0, 1, kSize).reshape({kSize, 1}).expand({kSize, kSize});
  const torch::Tensor x = torch::linspace(0, 1, kSize).reshape({1, kSize}).expand({kSize, kSize});
  const auto c = torch::rand({4});
  torch::Tensor img = 0.3 + 0.2 * c[0] * x + 0.2 * c[1] * y;
  img = img + 0.15 * torch::exp(-((x - c[2]).pow(2) + (y - c[3]).pow(2)) / 0.05);
  return img.clamp(0, 1).unsqueeze(0).contiguous();
}

void save_png(const std::string& path, const torch::Tensor& chw) {
  ImageData d;
  d.pixels = chw;
  d.depth = CV_8U;
  save_image(path, d);
}

// The score kinds without a network: the maps of hand-made residuals x - y, with expected values
// computed here from the definitions.

TEST(AnomalyScoreTest, KindNamesRoundTrip) {
  for (int k = 0; k < kScoreKinds; ++k) {
    const ScoreKind kind = static_cast<ScoreKind>(k);
    EXPECT_EQ(parse_score_kind(name_of(kind)), kind) << name_of(kind);
  }
  EXPECT_EQ(parse_score_kind("mse-coarse"), ScoreKind::kMseCoarse);
  EXPECT_EQ(parse_score_kind("mse-coarse-max"), ScoreKind::kMseCoarseMax);
  EXPECT_FALSE(uses_ssim_map(ScoreKind::kMseCoarse));
  try {
    parse_score_kind("mse-fine");
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("mse-coarse-max"), std::string::npos) << e.what();
  }
}

TEST(AnomalyScoreTest, CoarseOfAConstantResidualIsItsSquareToTheEdges) {
  // Three channels whose residuals average to c: the coarse score is c^2 at every pixel (edges
  // reflected), while the MSE also counts the channels' spread around c.
  constexpr double c = 0.2, d = 0.1;
  const torch::Tensor y = torch::full({1, 3, 20, 24}, 0.4);
  torch::Tensor x = y.clone();
  x[0][0] += c - d;
  x[0][1] += c;
  x[0][2] += c + d;
  const ImageScores s = scores_of(x, y, false);
  EXPECT_NEAR(s.score[static_cast<int>(ScoreKind::kMseCoarse)], c * c, 1e-6);
  EXPECT_NEAR(s.score[static_cast<int>(ScoreKind::kMseCoarseMax)], c * c, 1e-6);
  EXPECT_NEAR(s.score[static_cast<int>(ScoreKind::kMse)], c * c + 2 * d * d / 3, 1e-6);
}

TEST(AnomalyScoreTest, CoarseCancelsACheckerboardResidual) {
  // +a / -a alternating pixels: MSE a^2; reflection continues the pattern at the edges, so the
  // low-passed residual is a times the squared alternating sum of the kernel everywhere: ~0.
  constexpr double a = 0.3;
  const torch::Tensor i = torch::arange(28).reshape({28, 1}), j = torch::arange(28).reshape({1, 28});
  const torch::Tensor sign = 1 - 2 * ((i + j) % 2).to(torch::kFloat);
  const torch::Tensor y = torch::full({1, 1, 28, 28}, 0.5);
  const torch::Tensor x = y + a * sign.reshape({1, 1, 28, 28});
  const ImageScores s = scores_of(x, y, false);
  EXPECT_NEAR(s.score[static_cast<int>(ScoreKind::kMse)], a * a, 1e-6);
  EXPECT_LT(s.score[static_cast<int>(ScoreKind::kMseCoarse)], 1e-6 * a * a);
  EXPECT_LT(s.score[static_cast<int>(ScoreKind::kMseCoarseMax)], 1e-6 * a * a);
}

TEST(AnomalyScoreTest, CoarseOfOnePixelIsTheKernelsEnergy) {
  // One pixel of residual a far from the edges of an h x w image: the low-passed residual is
  // a g(u) g(v), so the mean of its square is a^2 (sum_k g(k)^2)^2 / (h w) and its maximum
  // a^2 g(0)^4, with g the normalised Gaussian of coarse_sigma(min(h, w)) on ceil(3 sigma) taps.
  constexpr double a = 0.5;
  for (int side : {28, 56}) {
    const int h = side, w = side + 8;
    const double sigma = coarse_sigma(side);
    const int radius = static_cast<int>(std::ceil(3 * sigma));
    std::vector<double> g;
    double total = 0;
    for (int k = -radius; k <= radius; ++k) total += g.emplace_back(std::exp(-k * k / (2 * sigma * sigma)));
    double energy = 0;
    for (double& v : g) {
      v /= total;
      energy += v * v;
    }
    const torch::Tensor y = torch::zeros({1, 1, h, w});
    torch::Tensor x = y.clone();
    x[0][0][h / 2][w / 2] = a;
    const ImageScores s = scores_of(x, y, false);
    const double g0 = g[radius];
    EXPECT_NEAR(s.score[static_cast<int>(ScoreKind::kMseCoarse)], a * a * energy * energy / (h * w), 1e-9) << side;
    EXPECT_NEAR(s.score[static_cast<int>(ScoreKind::kMseCoarseMax)], a * a * std::pow(g0, 4), 1e-7) << side;
    EXPECT_NEAR(s.score[static_cast<int>(ScoreKind::kMse)], a * a / (h * w), 1e-9) << side;
  }
}

// One model for the whole file: training it is the slow part (about 5 s on one core).
class AnomalyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    fs::create_directories(*dir_ / "train");
    for (int i = 0; i < 40; ++i) save_png(*dir_ / ("train/n" + std::to_string(100 + i) + ".png"), normal_image(i));
    TrainOptions o;
    o.task = "reconstruct";
    o.data_dir = *dir_ / "train";
    o.out_dir = *dir_ / "run";
    o.arch = preset_arch("conv-ae", 1);
    o.arch.widths = {8, 16, 16};
    o.arch.bottleneck_channels = 2;
    o.arch.head = Head::kSigmoid;
    o.noise = "none";
    o.resize = kSize;
    o.patches.patch = kSize;
    o.patches.batch = 8;
    o.patches.augment = false;
    o.iterations = 300;
    o.lr = 3e-3;
    o.log_every = 100;
    o.checkpoint_every = 300;
    Runtime runtime;
    TrainControl control;
    train_reconstruct(o, control, runtime, Logger(LogLevel::kQuiet));
    ExportOptions e;
    e.checkpoint = o.out_dir + "/last.ckpt";
    e.output = *dir_ / "model.pt";
    export_model(e);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string path(const std::string& name) { return *dir_ / name; }
  // `count` normal images FOLDER/PREFIX0.png ... from seeds first, first + 1, ...
  static void save_normal_images(const std::string& folder, const std::string& prefix, int count, uint64_t first) {
    fs::create_directories(path(folder));
    for (int i = 0; i < count; ++i) save_png(path(folder + "/" + prefix + std::to_string(i) + ".png"), normal_image(first + i));
  }
  static test::TempDir* dir_;
};
test::TempDir* AnomalyTest::dir_ = nullptr;

TEST_F(AnomalyTest, PaintedDefectScoresAboveTheCleanImageAndTheMapFindsIt) {
  const AnomalyModel model = AnomalyModel::load(path("model.pt"));
  EXPECT_EQ(model.image_size(), kSize);
  for (uint64_t seed : {1000, 1001, 1002}) {
    const torch::Tensor clean = normal_image(seed);
    torch::Tensor defect = clean.clone();
    defect.slice(1, 10, 16).slice(2, 18, 24).fill_(1.0);  // a bright 6 x 6 square at rows 10-15, cols 18-23
    const ImageScores a = model.score(clean, true), b = model.score(defect, true);
    // The maximum of the dissimilarity map is not asserted: on this barely trained model a clean
    // image's worst window can be as dissimilar as the defect's (measured 0.56 against 0.43).
    for (ScoreKind k : {ScoreKind::kMse, ScoreKind::kMseMax, ScoreKind::kSsim})
      EXPECT_GT(b.score[static_cast<int>(k)], 2 * a.score[static_cast<int>(k)]) << name_of(k) << " seed " << seed;
    cv::Point at;
    cv::minMaxLoc(b.error_map, nullptr, nullptr, nullptr, &at);
    EXPECT_TRUE(at.y >= 8 && at.y <= 17 && at.x >= 16 && at.x <= 25) << at;
  }
  // Any size: a 50 x 70 colour image is resized to the model's 32 x 32 and its map comes back at 50 x 70.
  const ImageScores big = model.score(torch::rand({3, 50, 70}), true);
  EXPECT_EQ(big.error_map.rows, 50);
  EXPECT_EQ(big.ssim_map.cols, 70);
}

TEST_F(AnomalyTest, CalibratedThresholdHoldsItsFprAndScoreAppliesIt) {
  save_normal_images("normal", "v", 50, 500);
  fs::copy_file(path("model.pt"), path("calibrated.pt"));
  CalibrateOptions c;
  c.model = path("calibrated.pt");
  c.normal = path("normal");
  c.fpr = 0.1;
  const CalibrateResult result = calibrate(c, Logger(LogLevel::kQuiet));
  EXPECT_EQ(result.flagged, 5);  // floor(0.1 x 50), scores distinct
  EXPECT_EQ(result.calibration.normal.count, 50);
  // Stored in the file: a fresh load reads the same threshold and statistics.
  const AnomalyModel reloaded = AnomalyModel::load(path("calibrated.pt"));
  ASSERT_TRUE(reloaded.calibration().present);
  EXPECT_EQ(reloaded.calibration().threshold, result.calibration.threshold);
  EXPECT_EQ(reloaded.calibration().score, kDefaultScore);
  EXPECT_DOUBLE_EQ(reloaded.calibration().normal.mean, result.calibration.normal.mean);
  EXPECT_DOUBLE_EQ(reloaded.calibration().fpr, 0.1);
  // score flags exactly the images above it, with heat maps of the image's size.
  ScoreOptions s;
  s.inputs = {path("normal")};
  s.model = path("calibrated.pt");
  s.output = path("heat");
  const ScoreReport report = score_files(s, Logger(LogLevel::kQuiet));
  ASSERT_EQ(report.rows.size(), 50u);
  EXPECT_TRUE(report.calibrated);
  EXPECT_EQ(report.anomalies, 5);
  for (const ScoredFile& row : report.rows) EXPECT_EQ(row.is_anomaly, row.score > result.calibration.threshold ? 1 : 0);
  const cv::Mat raw = cv::imread(path("heat/v7.map.png"), cv::IMREAD_UNCHANGED);
  EXPECT_EQ(raw.type(), CV_16UC1);
  EXPECT_EQ(raw.rows, kSize);
  EXPECT_EQ(cv::imread(path("heat/v7.heat.png"), cv::IMREAD_UNCHANGED).type(), CV_8UC3);
  const std::string csv = scores_csv(report);
  EXPECT_EQ(csv.rfind("file,score,is_anomaly\n", 0), 0u);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 51);
  // A checkpoint cannot hold a calibration: refused without --output.
  c.model = path("run/last.ckpt");
  EXPECT_THROW(calibrate(c, Logger(LogLevel::kQuiet)), UsageError);
}

TEST_F(AnomalyTest, CalibratedCoarseScoreIsStoredByNameAndUsedByScore) {
  save_normal_images("coarse-normal", "k", 10, 600);
  CalibrateOptions c;
  c.model = path("model.pt");
  c.normal = path("coarse-normal");
  c.fpr = 0.2;
  c.score = "mse-coarse";
  c.output = path("coarse.pt");
  const CalibrateResult result = calibrate(c, Logger(LogLevel::kQuiet));
  EXPECT_EQ(result.flagged, 2);
  const AnomalyModel model = AnomalyModel::load(path("coarse.pt"));
  ASSERT_TRUE(model.calibration().present);
  EXPECT_EQ(model.calibration().score, ScoreKind::kMseCoarse);
  // score uses the calibrated kind: each row is the image's mse-coarse.
  ScoreOptions s;
  s.inputs = {path("coarse-normal")};
  s.model = path("coarse.pt");
  const ScoreReport report = score_files(s, Logger(LogLevel::kQuiet));
  EXPECT_EQ(report.kind, ScoreKind::kMseCoarse);
  EXPECT_TRUE(report.calibrated);
  ASSERT_EQ(report.rows.size(), 10u);
  const ImageScores first = model.score(load_image(path("coarse-normal/k0.png")).pixels, false);
  EXPECT_DOUBLE_EQ(report.rows[0].score, first.score[static_cast<int>(ScoreKind::kMseCoarse)]);
  EXPECT_LT(first.score[static_cast<int>(ScoreKind::kMseCoarse)], first.score[static_cast<int>(ScoreKind::kMse)]);
}

// The latent Gaussian by hand: four codes (+-1, 0), (0, +-2) have mean 0, variances 2/3 and 8/3
// (n - 1 in the denominator) and no covariance; the ridge adds 1e-3 x their mean, 1/600.
TEST(LatentGaussian, FitsMeanAndShrunkPrecisionAsComputedByHand) {
  const std::vector<float> codes = {1, 0, -1, 0, 0, 2, 0, -2};
  const std::vector<double> coarse = {1e-3, 2e-3, 4e-3, 8e-3};
  std::string why;
  const LatentGaussian g = fit_latent_gaussian(codes, 2, coarse, &why);
  ASSERT_TRUE(g.present) << why;
  EXPECT_EQ(g.dims, 2);
  EXPECT_EQ(g.count, 4);
  EXPECT_NEAR(g.mean[0], 0, 1e-12);
  EXPECT_NEAR(g.mean[1], 0, 1e-12);
  const double vx = 2.0 / 3 + 1.0 / 600, vy = 8.0 / 3 + 1.0 / 600;
  EXPECT_NEAR(g.precision[0], 1 / vx, 1e-9);
  EXPECT_NEAR(g.precision[1], 0, 1e-12);
  EXPECT_NEAR(g.precision[3], 1 / vy, 1e-9);
  const float z[2] = {1, 1};
  EXPECT_NEAR(g.distance(z, 2), 1 / vx + 1 / vy, 1e-9);
  // The fitted codes' log distances: (1, 1, 4, 4) / (vx, vx, vy, vy); log coarse: log 1e-3 + k log 2.
  const double lx = std::log(1 / vx), ly = std::log(4 / vy), m = (lx + ly) / 2;
  EXPECT_NEAR(g.log_distance_mean, m, 1e-9);
  EXPECT_NEAR(g.log_distance_std, std::abs(lx - ly) / 2, 1e-9);
  const double lc = std::log(1e-3) + 1.5 * std::log(2.0), sc = std::log(2.0) * std::sqrt(1.25);
  EXPECT_NEAR(g.log_coarse_mean, lc, 1e-9);
  EXPECT_NEAR(g.log_coarse_std, sc, 1e-9);
  const double d = g.distance(z, 2);
  EXPECT_NEAR(g.blend(0.01, d), (std::log(0.01) - lc) / sc + (std::log(d) - m) / (std::abs(lx - ly) / 2), 1e-9);
  EXPECT_THROW(g.distance(z, 1), Error);
  // Not fitted: no more images than numbers, or a code longer than kMaxLatentDims.
  EXPECT_FALSE(fit_latent_gaussian(std::vector<float>(4, 0.f), 2, {1, 1}, &why).present);
  EXPECT_NE(why.find("more images than numbers"), std::string::npos) << why;
  const int64_t long_code = kMaxLatentDims + 1;
  EXPECT_FALSE(fit_latent_gaussian(std::vector<float>(static_cast<size_t>(long_code) * 300, 0.f), long_code,
                                   std::vector<double>(300, 1.0), &why).present);
  EXPECT_NE(why.find(std::to_string(long_code)), std::string::npos) << why;
}

TEST_F(AnomalyTest, CalibrateFitsTheNormalCodesAndTheLatentScoresUseThem) {
  // The tiny model's code is 2 x 8 x 8 = 128 numbers: 140 normal images fit it.
  save_normal_images("latent-normal", "l", 140, 2000);
  CalibrateOptions c;
  c.model = path("model.pt");
  c.normal = path("latent-normal");
  c.fpr = 0.1;
  c.score = "coarse-latent";
  c.output = path("latent.pt");
  const CalibrateResult result = calibrate(c, Logger(LogLevel::kQuiet));
  const LatentGaussian& g = result.calibration.latent;
  ASSERT_TRUE(g.present);
  EXPECT_EQ(g.dims, 128);
  EXPECT_EQ(g.count, 140);
  EXPECT_EQ(result.flagged, 14);  // floor(0.1 x 140): the threshold is on the coarse-latent scores
  // The file holds the same Gaussian, number for number.
  const AnomalyModel model = AnomalyModel::load(path("latent.pt"));
  ASSERT_TRUE(model.calibration().latent.present);
  EXPECT_EQ(model.calibration().score, ScoreKind::kCoarseLatent);
  EXPECT_EQ(model.calibration().latent.mean, g.mean);
  EXPECT_EQ(model.calibration().latent.precision, g.precision);
  EXPECT_EQ(model.calibration().latent.log_distance_std, g.log_distance_std);
  // An image's latent score is its code's distance; coarse-latent blends it with mse-coarse.
  const torch::Tensor image = normal_image(3000);
  const ImageScores s = model.score(image, false);
  const torch::Tensor code = model.encode(model.prepare(image).unsqueeze(0)).reshape({-1}).contiguous();
  const double d = g.distance(code.data_ptr<float>(), code.numel());
  EXPECT_NEAR(s.score[static_cast<int>(ScoreKind::kLatent)], d, 1e-9 * d);
  EXPECT_NEAR(s.score[static_cast<int>(ScoreKind::kCoarseLatent)],
              g.blend(s.score[static_cast<int>(ScoreKind::kMseCoarse)], d), 1e-9);
  // The normal images' own scores: 14 above the threshold, as calibrate counted.
  ScoreOptions so;
  so.inputs = {path("latent-normal")};
  so.model = path("latent.pt");
  const ScoreReport report = score_files(so, Logger(LogLevel::kQuiet));
  EXPECT_EQ(report.kind, ScoreKind::kCoarseLatent);
  EXPECT_EQ(report.anomalies, 14);
  // A code far from the normal ones: a blank image is farther than any normal image.
  const double blank = model.score(torch::full({1, kSize, kSize}, 0.95), false).score[static_cast<int>(ScoreKind::kLatent)];
  EXPECT_GT(blank, std::exp(g.log_distance_mean + 3 * g.log_distance_std));
  // Without the Gaussian the latent kinds are refused by score and calibrate, and NaN in eval.
  so.model = path("model.pt");
  so.score = "latent";
  EXPECT_THROW(score_files(so, Logger(LogLevel::kQuiet)), UsageError);
  EXPECT_TRUE(std::isnan(AnomalyModel::load(path("model.pt")).score(image, false).score[static_cast<int>(ScoreKind::kLatent)]));
  save_normal_images("latent-few", "f", 20, 4000);
  c.normal = path("latent-few");
  c.output = path("latent-few.pt");
  try {
    calibrate(c, Logger(LogLevel::kQuiet));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("latent-few"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("more images than numbers"), std::string::npos) << e.what();
  }
  // Recalibrating with another score on few images drops the old Gaussian instead of failing.
  c.model = path("latent.pt");
  c.score = "mse";
  c.output = path("latent-dropped.pt");
  EXPECT_FALSE(calibrate(c, Logger(LogLevel::kQuiet)).calibration.latent.present);
  EXPECT_FALSE(AnomalyModel::load(path("latent-dropped.pt")).calibration().latent.present);
}

TEST_F(AnomalyTest, DecodeOfEncodeIsTheReconstruction) {
  const AnomalyModel model = AnomalyModel::load(path("model.pt"));
  const torch::Tensor x = torch::stack({normal_image(7), normal_image(8)});
  const torch::Tensor code = model.encode(x);
  EXPECT_EQ(code.sizes().vec(), (std::vector<int64_t>{2, 2, 8, 8}));
  const torch::Tensor y = model.decode(code, kSize, kSize);
  EXPECT_LE((y - model.reconstruct(x)).abs().max().item<double>(), 1e-5);
  // Through the files: encode writes N x 128 latents, decode writes 32 x 32 images.
  fs::create_directories(path("enc"));
  save_png(path("enc/a.png"), normal_image(7));
  save_png(path("enc/b.png"), normal_image(8));
  EncodeOptions e;
  e.inputs = {path("enc")};
  e.model = path("model.pt");
  for (const std::string out : {"z.npy", "z.csv"}) {
    e.output = path(out);
    const EncodeReport r = encode_files(e, Logger(LogLevel::kQuiet));
    EXPECT_EQ(r.done, 2);
    EXPECT_EQ(r.dims, 128u);
  }
  const LatentTable npy = read_latents(path("z.npy")), csv = read_latents(path("z.csv"));
  EXPECT_EQ(npy.values, csv.values);
  EXPECT_EQ(npy.files, csv.files);
  DecodeOptions d;
  d.latents = path("z.npy");
  d.model = path("model.pt");
  d.output = path("dec");
  EXPECT_EQ(decode_files(d, Logger(LogLevel::kQuiet)).done, 2);
  const cv::Mat a = cv::imread(path("dec/a.png"), cv::IMREAD_UNCHANGED);
  EXPECT_EQ(a.rows, kSize);
  EXPECT_EQ(a.cols, kSize);
  // The decoded file is the reconstruction of a.png, to 8-bit rounding.
  const torch::Tensor rec = model.reconstruct(model.prepare(load_image(path("enc/a.png")).pixels).unsqueeze(0))[0];
  EXPECT_LE((load_image(path("dec/a.png")).pixels - rec).abs().max().item<double>(), 0.5 / 255 + 1e-6);
}

TEST_F(AnomalyTest, OneBadFileFailsByNameAndTheJobGoesOn) {
  save_normal_images("mixed", "ok", 3, 900);
  std::ofstream(path("mixed/broken.png")) << "not a png";
  ScoreOptions s;
  s.inputs = {path("mixed"), path("missing.png")};
  s.model = path("model.pt");
  const ScoreReport report = score_files(s, Logger(LogLevel::kQuiet));
  EXPECT_EQ(report.rows.size(), 3u);
  ASSERT_EQ(report.failures.size(), 2u);
  for (const std::string& f : report.failures) EXPECT_EQ(f.find('\n'), std::string::npos) << f;
  EXPECT_NE(report.failures[0].find("missing.png"), std::string::npos) << report.failures[0];
  EXPECT_NE(report.failures[1].find("broken.png"), std::string::npos) << report.failures[1];
  // A file that is not a model, and a denoiser, are refused by name.
  try {
    AnomalyModel::load(path("mixed/ok0.png"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ok0.png"), std::string::npos) << e.what();
  }
  const std::string denoiser = std::string(BOTTLENECK_SOURCE_DIR) + "/models/denoise-gray.pt";
  if (fs::exists(denoiser)) {
    try {
      AnomalyModel::load(denoiser);
      FAIL();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("residual head"), std::string::npos) << e.what();
    }
  }
}

TEST_F(AnomalyTest, EvalComputesAurocAndPixelFiguresAgainstMasks) {
  for (const char* d : {"ev/good", "ev/spot", "gt/spot"}) fs::create_directories(path(d));
  for (int i = 0; i < 6; ++i) {
    save_png(path("ev/good/g" + std::to_string(i) + ".png"), normal_image(700 + i));
    torch::Tensor img = normal_image(800 + i);
    img.slice(1, 4, 10).slice(2, 4, 10).fill_(1.0);
    save_png(path("ev/spot/s" + std::to_string(i) + ".png"), img);
    torch::Tensor mask = torch::zeros({1, kSize, kSize});
    mask.slice(1, 4, 10).slice(2, 4, 10).fill_(1.0);
    save_png(path("gt/spot/s" + std::to_string(i) + "_mask.png"), mask);
  }
  AnomalyEvalOptions o;
  o.model = path("model.pt");
  o.normal = {path("ev/good")};
  o.anomalous = {path("ev/spot")};
  o.masks = path("gt");
  const AnomalyEvalResult r = evaluate_anomaly(o, Logger(LogLevel::kQuiet));
  EXPECT_EQ(r.normal_count, 6);
  EXPECT_EQ(r.anomalous_count, 6);
  EXPECT_EQ(r.regions, 6);
  EXPECT_DOUBLE_EQ(r.auroc[static_cast<int>(ScoreKind::kMse)], 1.0);
  EXPECT_GT(r.pixel_auroc_mse, 0.9);
  EXPECT_GT(r.pro_mse, 0.5);
  EXPECT_NE(anomaly_eval_table(r).find("| spot (6) |"), std::string::npos) << anomaly_eval_table(r);
  // Every kind is reported, the coarse ones too.
  EXPECT_NE(anomaly_eval_table(r).find("| mse-coarse-max | "), std::string::npos) << anomaly_eval_table(r);
  EXPECT_NE(anomaly_eval_json(r).find("\"mse-coarse\": "), std::string::npos) << anomaly_eval_json(r);
  EXPECT_GT(r.auroc[static_cast<int>(ScoreKind::kMseCoarse)], 0.5);
  // An uncalibrated model has no latent Gaussian: those kinds are reported as absent, not as 0.5.
  EXPECT_TRUE(std::isnan(r.auroc[static_cast<int>(ScoreKind::kLatent)]));
  EXPECT_TRUE(std::isnan(r.categories[0].auroc[static_cast<int>(ScoreKind::kCoarseLatent)]));
  EXPECT_NE(anomaly_eval_table(r).find("| latent | - |"), std::string::npos) << anomaly_eval_table(r);
  EXPECT_NE(anomaly_eval_json(r).find("\"latent\": null"), std::string::npos) << anomaly_eval_json(r);
}

TEST_F(AnomalyTest, CliScoreExitsZeroWithAnomaliesAndNamesWhatIsWrong) {
  save_normal_images("cli-normal", "c", 10, 300);
  fs::copy_file(path("model.pt"), path("cli.pt"));
  const std::string dir = path("cli-normal");
  test::CommandResult r = test::run_cli("--threads 1 calibrate --model " + path("cli.pt") + " --normal " + dir + " --fpr 0.2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // 10 images for a 128-number code: no latent Gaussian, said, and its scores refused by score.
  EXPECT_NE(r.output.find("no latent scores: 10 normal images for a code of 128 numbers"), std::string::npos) << r.output;
  const test::CommandResult info = test::run_cli("info " + path("cli.pt"));
  EXPECT_NE(info.output.find("anomaly score:    mse-coarse > "), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("(FPR 0.2 asked on 10 normal images of " + dir + ")"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("latent Gaussian:  (none"), std::string::npos) << info.output;
  test::CommandResult latent = test::run_cli("--threads 1 score --model " + path("cli.pt") + " " + dir + " --score latent");
  EXPECT_EQ(latent.exit_code, 2) << latent.output;
  EXPECT_NE(latent.output.find("calibrate it first"), std::string::npos) << latent.output;
  r = test::run_cli("--threads 1 --quiet score --model " + path("cli.pt") + " " + dir);
  EXPECT_EQ(r.exit_code, 0) << r.output;  // anomalies are findings, not failures
  EXPECT_NE(r.output.find("file,score,is_anomaly\n"), std::string::npos) << r.output;
  size_t flagged = 0;
  for (size_t at = r.output.find(",1\n"); at != std::string::npos; at = r.output.find(",1\n", at + 1)) ++flagged;
  EXPECT_EQ(flagged, 2u) << r.output;  // floor(0.2 x 10)
  r = test::run_cli("--threads 1 score --model " + path("cli.pt") + " " + dir + " --score nope");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--score must be one of"), std::string::npos) << r.output;
  r = test::run_cli("--threads 1 encode --model " + path("absent.pt") + " " + dir + " -o " + path("z.csv"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("absent.pt: no such file"), std::string::npos) << r.output;
}

// --standardize: every image leaves model_input with mean 0.5 and spread 0.15 whatever its
// brightness and contrast, so a darker, flatter copy of an image is the same input; a flat image
// stays flat.
TEST(AnomalyInputTest, StandardizeTakesOutBrightnessAndContrast) {
  // Uniform values: none lies beyond the 3.3 spreads at which the standardized input clips.
  torch::manual_seed(3);
  const torch::Tensor x = 0.2 + 0.4 * torch::rand({1, kSize, kSize});
  const torch::Tensor a = model_input(x, 1, 0, true);
  EXPECT_NEAR(a.mean().item<double>(), 0.5, 1e-3);
  EXPECT_NEAR(a.std(/*unbiased=*/false).item<double>(), 0.15, 2e-3);
  const torch::Tensor darker = model_input(0.1 + 0.5 * x, 1, 0, true);
  EXPECT_LE((darker - a).abs().max().item<double>(), 1e-5);
  EXPECT_LE((model_input(x, 1, 0, false) - x).abs().max().item<double>(), 0);  // off: the image as it is
  EXPECT_LE((model_input(torch::full({1, 8, 8}, 0.7), 1, 0, true) - 0.5).abs().max().item<double>(), 1e-6);
  // Resizing first: the 16 x 16 input of a 32 x 32 image, in RGB from gray.
  EXPECT_EQ(model_input(x, 3, 16, true).sizes().vec(), (std::vector<int64_t>{3, 16, 16}));
}

// A dense code from the command line: --latent K trains on whole images of the run's --resize,
// encode writes K numbers per image, decode turns them back into the reconstructions, and the
// sizes a dense code cannot take are refused before any training.
TEST_F(AnomalyTest, CliDenseLatentTrainsEncodesAndDecodes) {
  const std::string train = path("train"), run = path("dense-run");
  const std::string common = "--threads 1 --quiet train --task reconstruct --data " + train +
                             " --arch conv-ae --widths 8,16,16 --latent 6 --head sigmoid --no-augment --batch 8 ";
  fs::create_directories(path("dense-mixed"));
  save_png(path("dense-mixed/a.png"), normal_image(1));
  save_png(path("dense-mixed/b.png"), torch::rand({1, 40, 40}));
  test::CommandResult r = test::run_cli("--threads 1 --quiet train --task reconstruct --data " + path("dense-mixed") +
                                        " --arch conv-ae --latent 6 --head sigmoid --patch 32 --out " + path("dense-bad"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("holds one of 40 x 40: give --resize 32"), std::string::npos) << r.output;
  r = test::run_cli(common + "--resize 32 --patch 32 --input-size 16 --out " + path("dense-bad"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--input-size 16 differs from --patch 32"), std::string::npos) << r.output;
  r = test::run_cli(common + "--resize 32 --patch 16 --out " + path("dense-bad"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("differs from --resize 32"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("dense-bad/last.ckpt")));

  r = test::run_cli(common + "--resize 32 --patch 32 --iters 200 --lr 3e-3 --val-every 200 --checkpoint-every 200 --standardize --out " + run);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_cli("--threads 1 export --checkpoint " + run + "/last.ckpt --output " + path("dense.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const AnomalyModel model = AnomalyModel::load(path("dense.pt"));
  EXPECT_EQ(model.info().arch.latent, 6);
  EXPECT_EQ(model.image_size(), kSize);
  EXPECT_TRUE(model.standardize());  // the run's --standardize travels in the export
  EXPECT_FALSE(AnomalyModel::load(path("model.pt")).standardize());

  fs::create_directories(path("dense-in"));
  save_png(path("dense-in/a.png"), normal_image(7));
  // Any size is brought to the model's: a 48 x 48 copy encodes too.
  const torch::Tensor big = torch::nn::functional::interpolate(
      normal_image(8).unsqueeze(0),
      torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{48, 48}).mode(torch::kBilinear).align_corners(false))[0];
  save_png(path("dense-in/b.png"), big.clamp(0, 1));
  r = test::run_cli("--threads 1 --quiet encode --model " + path("dense.pt") + " " + path("dense-in") + " -o " + path("dz.csv"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const LatentTable table = read_latents(path("dz.csv"));
  ASSERT_EQ(table.files.size(), 2u);
  EXPECT_EQ(table.dims, 6u);
  r = test::run_cli("--threads 1 --quiet decode --model " + path("dense.pt") + " " + path("dz.csv") + " -o " + path("dense-out"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const torch::Tensor rec = model.reconstruct(model.prepare(load_image(path("dense-in/a.png")).pixels).unsqueeze(0))[0];
  // CSV keeps every float (%.9g): the decoded PNG is the reconstruction to 8-bit rounding.
  EXPECT_LE((load_image(path("dense-out/a.png")).pixels - rec).abs().max().item<double>(), 0.5 / 255 + 1e-5);
  // It learned something: the reconstruction is nearer its (standardized) input than that
  // input's mean level.
  const torch::Tensor x = model.prepare(load_image(path("dense-in/a.png")).pixels);
  EXPECT_LT((rec - x).pow(2).mean().item<double>(), 0.5 * (x - x.mean()).pow(2).mean().item<double>());
}

}  // namespace
}  // namespace bottleneck

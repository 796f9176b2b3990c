#include "anomaly/anomaly_model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "image/image_io.h"
#include "nets/models.h"
#include "util/error.h"
#include "util/text_format.h"

namespace bottleneck {
namespace {

namespace F = torch::nn::functional;
using Json = nlohmann::ordered_json;

constexpr const char* kScoreNames[kScoreKinds] = {"mse",        "mse-max",        "ssim",   "ssim-max",
                                                  "mse-coarse", "mse-coarse-max", "latent", "coarse-latent"};
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

LatentGaussian parse_latent(const Json& j) {
  LatentGaussian g;
  g.present = true;
  g.dims = j.at("dims").get<int64_t>();
  g.count = j.at("count").get<int64_t>();
  g.ridge = j.at("ridge").get<double>();
  g.mean = j.at("mean").get<std::vector<double>>();
  g.precision = j.at("precision").get<std::vector<double>>();
  g.log_coarse_mean = j.at("log_coarse").at("mean").get<double>();
  g.log_coarse_std = j.at("log_coarse").at("std").get<double>();
  g.log_distance_mean = j.at("log_distance").at("mean").get<double>();
  g.log_distance_std = j.at("log_distance").at("std").get<double>();
  if (g.dims <= 0 || g.dims > kMaxLatentDims || static_cast<int64_t>(g.mean.size()) != g.dims ||
      static_cast<int64_t>(g.precision.size()) != g.dims * g.dims)
    throw std::runtime_error("latent Gaussian of " + std::to_string(g.dims) + " numbers holds " +
                             std::to_string(g.mean.size()) + " means and " + std::to_string(g.precision.size()) + " precisions");
  bool finite = std::isfinite(g.log_coarse_mean) && std::isfinite(g.log_distance_mean) && g.log_coarse_std > 0 &&
                g.log_distance_std > 0;
  for (double v : g.mean) finite = finite && std::isfinite(v);
  for (double v : g.precision) finite = finite && std::isfinite(v);
  if (!finite) throw std::runtime_error("latent Gaussian holds a value that is not finite");
  return g;
}

Json latent_json(const LatentGaussian& g) {
  Json j;
  j["dims"] = g.dims;
  j["count"] = g.count;
  j["ridge"] = g.ridge;
  j["log_coarse"] = {{"mean", g.log_coarse_mean}, {"std", g.log_coarse_std}};
  j["log_distance"] = {{"mean", g.log_distance_mean}, {"std", g.log_distance_std}};
  j["mean"] = g.mean;
  j["precision"] = g.precision;
  return j;
}

// A normalised 1-D Gaussian of `radius` taps each side, as a 1 x 1 x 1 x K kernel.
torch::Tensor gaussian_row(double sigma, int radius) {
  torch::Tensor x = torch::arange(-radius, radius + 1, torch::kFloat);
  torch::Tensor g = torch::exp(-(x * x) / (2 * sigma * sigma));
  return (g / g.sum()).reshape({1, 1, 1, -1});
}

// Separable Gaussian filter of N x 1 x H x W, same size, edges reflected (replicated where the
// image is too small to reflect).
torch::Tensor blur(const torch::Tensor& x, double sigma, int radius) {
  const torch::Tensor row = gaussian_row(sigma, radius);
  auto pad = [&](const torch::Tensor& t, std::vector<int64_t> p, int64_t side) {
    const bool reflect = radius < side;
    return F::pad(t, F::PadFuncOptions(p).mode(reflect ? F::PadFuncOptions::mode_t(torch::kReflect)
                                                       : F::PadFuncOptions::mode_t(torch::kReplicate)));
  };
  torch::Tensor y = torch::conv2d(pad(x, {radius, radius, 0, 0}, x.size(3)), row);
  return torch::conv2d(pad(y, {0, 0, radius, radius}, x.size(2)), row.transpose(2, 3));
}

torch::Tensor smooth(const torch::Tensor& map) { return blur(map, kMapSigma, static_cast<int>(std::ceil(3 * kMapSigma))); }

// (1 - SSIM) / 2 per pixel, N x 1 x H x W (mean over channels), with the SSIM of Wang et al.
// 2004 (11 x 11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03; image/metrics.h's constants) at
// every pixel instead of the valid region only.
torch::Tensor dissimilarity_map(const torch::Tensor& x, const torch::Tensor& y) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const torch::Tensor a = x.reshape({n * c, 1, h, w}), b = y.reshape({n * c, 1, h, w});
  auto g = [&](const torch::Tensor& t) { return blur(t, 1.5, 5); };
  const torch::Tensor ma = g(a), mb = g(b);
  const torch::Tensor saa = g(a * a) - ma * ma, sbb = g(b * b) - mb * mb, sab = g(a * b) - ma * mb;
  constexpr double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
  const torch::Tensor ssim = ((2 * ma * mb + c1) * (2 * sab + c2)) / ((ma * ma + mb * mb + c1) * (saa + sbb + c2));
  return ((1 - ssim) / 2).clamp(0, 1).reshape({n, c, h, w}).mean(1, true);
}

cv::Mat plane_mat(const torch::Tensor& hw) {
  const torch::Tensor t = hw.contiguous().to(torch::kFloat);
  return cv::Mat(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_32F, t.data_ptr<float>()).clone();
}

Calibration parse_calibration(const Json& a, const std::string& path) {
  Calibration c;
  try {
    c.present = true;
    c.score = parse_score_kind(a.at("score").get<std::string>());
    c.threshold = a.at("threshold").get<double>();
    c.fpr = a.at("fpr").get<double>();
    c.map_scale = a.at("map_scale").get<double>();
    c.normal_dir = a.value("normal_dir", "");
    const Json& s = a.at("normal");
    c.normal.count = s.at("count").get<int64_t>();
    c.normal.mean = s.at("mean").get<double>();
    c.normal.std = s.at("std").get<double>();
    c.normal.min = s.at("min").get<double>();
    c.normal.max = s.at("max").get<double>();
    c.normal.p50 = s.at("p50").get<double>();
    c.normal.p95 = s.at("p95").get<double>();
    c.normal.p99 = s.at("p99").get<double>();
    if (a.contains("latent")) c.latent = parse_latent(a.at("latent"));
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kCorrupt, path, "damaged anomaly calibration in the metadata: " + first_line(e.what()));
  }
  if (!std::isfinite(c.threshold)) throw Error(ErrorKind::kCorrupt, path, "damaged anomaly calibration: threshold is not finite");
  return c;
}

}  // namespace

const char* name_of(ScoreKind kind) { return kScoreNames[static_cast<int>(kind)]; }

ScoreKind parse_score_kind(const std::string& text) {
  for (int i = 0; i < kScoreKinds; ++i)
    if (text == kScoreNames[i]) return static_cast<ScoreKind>(i);
  throw UsageError("--score must be one of " + score_kind_names() + ", got '" + text + "'");
}

std::string score_kind_names() {
  std::string names;
  for (int i = 0; i < kScoreKinds; ++i) names += std::string(i ? ", " : "") + kScoreNames[i];
  return names;
}

bool uses_ssim_map(ScoreKind kind) { return kind == ScoreKind::kSsim || kind == ScoreKind::kSsimMax; }

bool uses_latent(ScoreKind kind) { return kind == ScoreKind::kLatent || kind == ScoreKind::kCoarseLatent; }

double coarse_sigma(int64_t side) { return kCoarseSigma * static_cast<double>(side) / kCoarseSigmaSide; }

AnomalyModel AnomalyModel::load(const std::string& path) {
  AnomalyModel m;
  m.network_ = load_network(path);
  if (m.network_.info.arch.head == Head::kResidual)
    throw Error(ErrorKind::kInvalidData, path,
                "is a denoiser (residual head), not a reconstruction model; train one with `train --task reconstruct`");
  if (m.network_.info.arch.in_channels != m.network_.info.arch.out_channels)
    throw Error(ErrorKind::kInvalidData, path, "reconstructs a different number of channels than it reads");
  if (!m.network_.config_json.empty()) {
    const auto config = Json::parse(m.network_.config_json, nullptr, false);
    if (config.is_object() && config.contains("resize") && config["resize"].is_number_integer())
      m.image_size_ = config["resize"].get<int>();
    if (m.image_size_ < 0 || m.image_size_ > 1 << 15)
      throw Error(ErrorKind::kCorrupt, path, "damaged training options: resize " + std::to_string(m.image_size_));
    if (config.is_object() && config.contains("standardize") && config["standardize"].is_boolean())
      m.standardize_ = config["standardize"].get<bool>();
  }
  // A dense code takes its one input size: every image is brought to it, whatever the run said.
  if (m.network_.info.arch.dense()) m.image_size_ = m.network_.info.arch.input_size;
  if (!m.network_.metadata_json.empty()) {
    const auto meta = Json::parse(m.network_.metadata_json, nullptr, false);
    if (meta.is_object() && meta.contains("anomaly")) m.calibration_ = parse_calibration(meta["anomaly"], path);
  }
  return m;
}

int AnomalyModel::channels() const { return network_.info.arch.in_channels; }

std::string AnomalyModel::metadata_with(const Calibration& c) const {
  if (network_.metadata_json.empty())
    throw Error(ErrorKind::kUsage, path(), "a checkpoint holds no calibration; calibrate an export of it");
  Json meta = Json::parse(network_.metadata_json);
  Json a;
  a["score"] = name_of(c.score);
  a["threshold"] = c.threshold;
  a["fpr"] = c.fpr;
  a["map_scale"] = c.map_scale;
  a["normal_dir"] = c.normal_dir;
  Json s;
  s["count"] = c.normal.count;
  s["mean"] = c.normal.mean;
  s["std"] = c.normal.std;
  s["min"] = c.normal.min;
  s["max"] = c.normal.max;
  s["p50"] = c.normal.p50;
  s["p95"] = c.normal.p95;
  s["p99"] = c.normal.p99;
  a["normal"] = s;
  a["image_size"] = image_size_;
  if (c.latent.present) a["latent"] = latent_json(c.latent);
  meta["anomaly"] = a;
  return meta.dump(2);
}

torch::Tensor model_input(const torch::Tensor& image, int channels, int size, bool standardize) {
  torch::Tensor x = to_channels(image, channels).unsqueeze(0);
  if (size > 0 && (x.size(2) != size || x.size(3) != size)) {
    // Area averaging when shrinking (no aliasing), bilinear when enlarging.
    const bool shrink = x.size(2) >= size && x.size(3) >= size;
    auto o = F::InterpolateFuncOptions().size(std::vector<int64_t>{size, size});
    o = shrink ? o.mode(torch::kArea) : o.mode(torch::kBilinear).align_corners(false);
    x = F::interpolate(x, o).clamp(0, 1);
  }
  if (standardize) {
    // The floor keeps a flat image flat (0.5) instead of amplifying its rounding noise.
    const torch::Tensor spread = x.std(/*unbiased=*/false).clamp_min(1e-2);
    x = (0.5 + 0.15 * (x - x.mean()) / spread).clamp(0, 1);
  }
  return x.squeeze(0).contiguous();
}

torch::Tensor AnomalyModel::prepare(const torch::Tensor& image) const {
  return model_input(image, channels(), image_size_, standardize_);
}

torch::Tensor AnomalyModel::reconstruct(const torch::Tensor& batch) const {
  torch::NoGradGuard no_grad;
  return network_.model->forward(batch);
}

torch::Tensor AnomalyModel::encode(const torch::Tensor& batch) const {
  torch::NoGradGuard no_grad;
  return network_.model->encode(batch);
}

torch::Tensor AnomalyModel::decode(const torch::Tensor& codes, int64_t height, int64_t width) const {
  torch::NoGradGuard no_grad;
  try {
    return network_.model->decode(codes, height, width);
  } catch (const Error& e) {
    throw Error(e.kind(), path(), e.reason());
  }
}

std::vector<int64_t> AnomalyModel::code_shape(int64_t height, int64_t width) const {
  torch::NoGradGuard no_grad;
  return network_.model->encode(torch::zeros({1, channels(), height, width})).sizes().slice(1).vec();
}

torch::Tensor coarse_residual(const torch::Tensor& x, const torch::Tensor& y, double sigma) {
  return blur((x - y).mean(1, true), sigma, static_cast<int>(std::ceil(3 * sigma)));
}

ImageScores scores_of(const torch::Tensor& x, const torch::Tensor& y, bool maps) {
  const torch::Tensor se = (x - y).pow(2).mean(1, true);
  const torch::Tensor se_smooth = smooth(se);
  const torch::Tensor dssim = smooth(dissimilarity_map(x, y));
  const torch::Tensor coarse = coarse_residual(x, y, coarse_sigma(std::min(x.size(2), x.size(3)))).pow(2);
  ImageScores s;
  s.score[static_cast<int>(ScoreKind::kMse)] = se.mean().item<double>();
  s.score[static_cast<int>(ScoreKind::kMseMax)] = se_smooth.max().item<double>();
  s.score[static_cast<int>(ScoreKind::kSsim)] = dssim.mean().item<double>();
  s.score[static_cast<int>(ScoreKind::kSsimMax)] = dssim.max().item<double>();
  s.score[static_cast<int>(ScoreKind::kMseCoarse)] = coarse.mean().item<double>();
  s.score[static_cast<int>(ScoreKind::kMseCoarseMax)] = coarse.max().item<double>();
  s.score[static_cast<int>(ScoreKind::kLatent)] = kNaN;
  s.score[static_cast<int>(ScoreKind::kCoarseLatent)] = kNaN;
  if (maps) {
    s.error_map = plane_mat(se_smooth[0][0]);
    s.ssim_map = plane_mat(dssim[0][0]);
  }
  return s;
}

ImageScores AnomalyModel::score(const torch::Tensor& image, bool maps, bool code) const {
  const torch::Tensor x = prepare(image).unsqueeze(0);
  ImageScores s = scores_of(x, reconstruct(x).clamp(0, 1), maps);
  const LatentGaussian& g = calibration_.latent;
  if (code || g.present) {
    const torch::Tensor z = encode(x).reshape({-1}).to(torch::kFloat).contiguous();
    s.code.assign(z.data_ptr<float>(), z.data_ptr<float>() + z.numel());
  }
  if (g.present) {
    try {
      const double d = g.distance(s.code.data(), static_cast<int64_t>(s.code.size()));
      s.score[static_cast<int>(ScoreKind::kLatent)] = d;
      s.score[static_cast<int>(ScoreKind::kCoarseLatent)] = g.blend(s.score[static_cast<int>(ScoreKind::kMseCoarse)], d);
    } catch (const Error& e) {
      throw Error(ErrorKind::kInvalidData, "", e.reason() + " (" + path() + " was calibrated on images of another size)");
    }
  }
  if (maps) {
    const int h = static_cast<int>(image.size(1)), w = static_cast<int>(image.size(2));
    for (cv::Mat* m : {&s.error_map, &s.ssim_map})
      if (m->rows != h || m->cols != w) cv::resize(cv::Mat(*m), *m, cv::Size(w, h), 0, 0, cv::INTER_LINEAR);
  }
  return s;
}

cv::Mat heat_map_picture(const torch::Tensor& image, const cv::Mat& map, double scale) {
  double top = scale;
  if (!(top > 0)) cv::minMaxLoc(map, nullptr, &top);
  if (!(top > 0)) top = 1;
  cv::Mat level;
  map.convertTo(level, CV_8U, 255.0 / top);  // saturates above `scale`
  cv::Mat colour;
  cv::applyColorMap(level, colour, cv::COLORMAP_JET);
  const torch::Tensor gray = to_channels(image, 1);
  cv::Mat base = tensor_to_mat(gray, CV_8U);
  cv::Mat base_bgr;
  cv::cvtColor(base, base_bgr, cv::COLOR_GRAY2BGR);
  cv::Mat out;
  cv::addWeighted(base_bgr, 0.5, colour, 0.5, 0, out);
  return out;
}

cv::Mat raw_map_samples(const cv::Mat& map) {
  cv::Mat clipped;
  cv::min(cv::max(map, 0.0), 1.0, clipped);
  cv::Mat out;
  clipped.convertTo(out, CV_16U, 65535.0);
  return out;
}

}  // namespace bottleneck

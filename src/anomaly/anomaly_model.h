#pragma once

// A reconstruction model put to work as an anomaly detector and a feature extractor: the
// network of a model file (train --task reconstruct, then export), the size it sees images at,
// the anomaly score it uses and, once `calibrate` has run, the threshold and the statistics of
// the normal scores it was set on. Those live in the export's metadata (bottleneck.json, key
// "anomaly"; docs/formats.md), so a model file carries everything `score` needs.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>
#include <torch/types.h>

#include "anomaly/anomaly_metrics.h"
#include "anomaly/latent_gaussian.h"
#include "formats/model_file.h"

namespace bottleneck {

// How an image's reconstruction error becomes one number. The map is per pixel; the image score
// reduces it. Chosen by measurement (README "Anomaly detection"): the mean suits defects that
// change much of the image, the maximum of the smoothed map small local ones. New kinds go at the
// end: the values index ImageScores::score and the evaluation's tables (files store the name).
enum class ScoreKind {
  kMse,            // mean squared error over pixels and channels
  kMseMax,         // maximum of the squared-error map smoothed with a Gaussian (kMapSigma)
  kSsim,           // mean of the structural dissimilarity map (1 - SSIM) / 2, 11 x 11 Gaussian window
  kSsimMax,        // maximum of the smoothed dissimilarity map
  kMseCoarse,      // mean over pixels of the squared low-passed residual (coarse_residual)
  kMseCoarseMax,   // maximum of the squared low-passed residual
  kLatent,         // squared Mahalanobis distance of the code from the normal codes (latent_gaussian.h)
  kCoarseLatent,   // kMseCoarse and kLatent, each log-standardized on the normal images, summed
};
inline constexpr int kScoreKinds = 8;
// "mse", "mse-max", "ssim", "ssim-max", "mse-coarse", "mse-coarse-max", "latent", "coarse-latent"
const char* name_of(ScoreKind kind);
ScoreKind parse_score_kind(const std::string& text);  // UsageError listing the names
std::string score_kind_names();  // every name, comma-separated, in ScoreKind order
// The map a kind reduces: squared error (kMse, kMseMax; the coarse kinds draw it too) or
// dissimilarity (kSsim, kSsimMax).
bool uses_ssim_map(ScoreKind kind);
// The kinds that need the latent Gaussian `calibrate` fits (NaN for a model without one).
bool uses_latent(ScoreKind kind);

// The default before calibration chooses one (measured: README "Anomaly detection"): of the
// kinds that need no calibration mse-coarse had the best mean AUROC on the Fashion-MNIST
// one-class protocol (0.919 against mse's 0.893) and on the magnetic tiles (0.896 against
// 0.789). coarse-latent beat it on Fashion-MNIST (0.937) and lost on the tiles (0.837), and it
// needs a calibration: not a default.
inline constexpr ScoreKind kDefaultScore = ScoreKind::kMseCoarse;
// Sigma of the Gaussian that smooths the maps, in pixels of the model's input: a single noisy
// pixel must not decide an image's maximum, and heat maps read better smooth.
inline constexpr double kMapSigma = 2.0;
// Sigma of the Gaussian that low-passes the signed residual of the coarse kinds, in pixels of a
// 28-pixel input (coarse_sigma scales it). Blurring x - y (mean over channels) before squaring
// cancels fine-texture errors, which alternate in sign and which any autoencoder makes on every
// image, and keeps structural errors of one sign (a missing sleeve, a stain). Measured with PCA
// (k = 32, fit per class) on the Fashion-MNIST one-class protocol (28 x 28), mean image AUROC
// over the 10 classes: plain MSE 0.9051; coarse at sigma 0.5 / 1 / 1.5 / 2 / 3 px: 0.9169 /
// 0.9278 / 0.9289 / 0.9276 / 0.9220. Our conv-ae (scripts/bench/anomaly.py's, 500 steps),
// mse against mse-coarse: class 0 0.8452 / 0.8480, class 8 0.6539 / 0.8136.
inline constexpr double kCoarseSigma = 1.5;
inline constexpr int kCoarseSigmaSide = 28;  // the input side kCoarseSigma was measured at
// The coarse kinds' sigma for an input whose short side is `side` pixels (image_size(), or the
// image's own short side when that is 0): kCoarseSigma x side / 28, a fixed fraction of the
// image. Measured with PCA (k = 64) on magnetic tile resized to 32, 64 and 128 px, sigma at
// 0.5 / 1 / 2 / 4 / 8 times this: mean image AUROC 0.755 / 0.759 / 0.782 / 0.811 / 0.746 at
// 32 px, 0.741 / 0.745 / 0.772 / 0.793 / 0.756 at 64, 0.735 / 0.739 / 0.764 / 0.790 / 0.731 at
// 128: the best sigma keeps its fraction of the side, not its count of pixels. (That data
// prefers 4 times the Fashion-MNIST sigma; the default follows Fashion-MNIST.)
double coarse_sigma(int64_t side);

struct Calibration {
  bool present = false;
  ScoreKind score = kDefaultScore;
  double threshold = 0;    // an image scoring strictly above it is an anomaly
  double fpr = 0;          // the false-positive rate asked for on the normal set
  ScoreStats normal;       // the normal images' scores
  double map_scale = 0;    // map value drawn at the top of the heat maps' colour scale: the
                           // 99th percentile of the normal images' map maxima
  std::string normal_dir;  // the folder the normal images came from
  LatentGaussian latent;   // the normal images' codes (when they could be fitted)
};

// Everything one image gives: its scores and, when asked, the two maps at the image's size.
struct ImageScores {
  double score[kScoreKinds] = {};  // by ScoreKind
  cv::Mat error_map;   // CV_32F, H x W: smoothed squared error (mean over channels)
  cv::Mat ssim_map;    // CV_32F, H x W: smoothed (1 - SSIM) / 2
  std::vector<float> code;  // the flattened code, when asked for
  const cv::Mat& map(ScoreKind kind) const { return uses_ssim_map(kind) ? ssim_map : error_map; }
};

// The low-passed residual of the coarse kinds: N x 1 x h x w, (x - y) averaged over channels
// (signed), blurred with a Gaussian of `sigma` pixels (radius ceil(3 sigma)) with the image's edges
// reflected, as the other maps. Reflection keeps a residual that is constant near an edge at its
// value up to the edge (zero padding would halve it there, so a stain touching the border would
// score below the same stain inside) and still cancels one that alternates in sign.
torch::Tensor coarse_residual(const torch::Tensor& x, const torch::Tensor& y, double sigma);
// Every score of prepared images against their reconstructions (both 1 x C x h x w in [0, 1]),
// the coarse kinds at coarse_sigma(min(h, w)); with `maps`, the maps at h x w. The latent kinds
// are NaN here (they need the model's code: AnomalyModel::score).
ImageScores scores_of(const torch::Tensor& x, const torch::Tensor& y, bool maps);

// An image (C x H x W float in [0,1], C of 1 or 3) as a reconstruction model sees it, in
// training and in scoring alike: converted to `channels`; resized to `size` x `size` when size
// > 0 (area averaging to shrink, bilinear to enlarge); and with `standardize`, its own mean and
// spread taken out, 0.5 + 0.15 (x - mean) / std clipped to [0, 1] (3.3 standard deviations each
// side), so brightness and contrast that change between photos do not count as anomalies.
torch::Tensor model_input(const torch::Tensor& image, int channels, int size, bool standardize);

class AnomalyModel {
 public:
  // Reads a checkpoint or an export of a network with a sigmoid or linear head (Error
  // otherwise, naming the file); the settings come from the run's options stored in the file.
  static AnomalyModel load(const std::string& path);

  const ModelInfo& info() const { return network_.info; }
  const std::string& path() const { return network_.info.path; }
  int channels() const;
  // The side images are resized to (both dimensions) before the network; 0 = used as they are.
  int image_size() const { return image_size_; }
  // Whether images are standardized before the network (train --standardize).
  bool standardize() const { return standardize_; }
  const Calibration& calibration() const { return calibration_; }
  void clear_calibration() { calibration_ = Calibration(); }
  // The export's metadata with `calibration` in place of the one it has (for calibrate).
  std::string metadata_with(const Calibration& calibration) const;
  bool is_export() const { return !network_.metadata_json.empty(); }

  // An image (C x H x W float in [0,1], any C of 1 or 3) as the network sees it: model_input
  // at the model's channels, image_size() and standardize().
  torch::Tensor prepare(const torch::Tensor& image) const;
  // N x C x h x w prepared images -> their reconstructions (the network's forward()).
  torch::Tensor reconstruct(const torch::Tensor& batch) const;
  // N x C x h x w -> N x code; and back, for codes of images of h x w.
  torch::Tensor encode(const torch::Tensor& batch) const;
  torch::Tensor decode(const torch::Tensor& codes, int64_t height, int64_t width) const;
  // The code's shape (channels, rows, columns) for an h x w input.
  std::vector<int64_t> code_shape(int64_t height, int64_t width) const;

  // Scores of one image (C x H x W in [0,1]); with `maps`, the maps resized to its H x W; with
  // `code`, its flattened code. The latent kinds are NaN unless the calibration has a latent
  // Gaussian.
  ImageScores score(const torch::Tensor& image, bool maps, bool code = false) const;

 private:
  LoadedNetwork network_;
  int image_size_ = 0;
  bool standardize_ = false;
  Calibration calibration_;
};

// Heat map picture: the map in a colour scale (0 -> blue, `scale` and above -> red) blended
// half over the image (shown in gray), BGR 8-bit. `scale` <= 0 uses the map's own maximum.
cv::Mat heat_map_picture(const torch::Tensor& image, const cv::Mat& map, double scale);
// The raw map as 16-bit samples: value x 65535, clipped to [0, 1] first (both maps lie in it).
cv::Mat raw_map_samples(const cv::Mat& map);

}  // namespace bottleneck

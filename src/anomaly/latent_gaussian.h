#pragma once

// The normal images' codes as one Gaussian, for the latent scores: how far an image's code lies
// from the codes of normal images (squared Mahalanobis distance), alone (`latent`) or added to
// the reconstruction error (`coarse-latent`). An autoencoder reconstructs much that it never
// saw, so an image of another kind can have a small residual and still a code unlike any normal
// one; PCA's two classic statistics (T^2 in the subspace, Q off it) are this pair for a linear
// code. Fit by `calibrate` on its normal images; stored in the model file with the calibration.
// Torch-free.

#include <cstdint>
#include <string>
#include <vector>

namespace bottleneck {

// Codes longer than this are not fitted: the precision matrix (dims^2 numbers) lives in the
// model's metadata, and a folder of normal images rarely holds enough images to estimate more.
inline constexpr int64_t kMaxLatentDims = 256;
// Shrinkage towards the mean variance (covariance + ridge x trace / dims x I): keeps the precision
// finite when a code number hardly varies (a dead unit) without changing a well-spread code.
inline constexpr double kLatentRidge = 1e-3;

struct LatentGaussian {
  bool present = false;
  int64_t dims = 0;
  int64_t count = 0;              // normal images fitted
  double ridge = kLatentRidge;
  std::vector<double> mean;       // dims
  std::vector<double> precision;  // dims x dims, row-major: the regularised covariance's inverse
  // Mean and standard deviation over the normal images of log mse-coarse and of log distance:
  // they put the two on one scale, so each counts the same in coarse-latent.
  double log_coarse_mean = 0, log_coarse_std = 1;
  double log_distance_mean = 0, log_distance_std = 1;

  // Squared Mahalanobis distance of `code` (dims values) from the mean. Error (kInvalidData) for
  // a code of another length.
  double distance(const float* code, int64_t length) const;
  // The coarse-latent score: (log coarse - its mean) / its spread + the same for the distance.
  double blend(double coarse, double distance) const;
};

// Fits `codes` (count x dims, row-major) and the normal images' mse-coarse scores (`coarse`, one
// per code). Not present, with the reason in `why`, when the codes cannot be fitted: more than
// kMaxLatentDims numbers, or not more images than numbers.
LatentGaussian fit_latent_gaussian(const std::vector<float>& codes, int64_t dims, const std::vector<double>& coarse,
                                   std::string* why);

}  // namespace bottleneck

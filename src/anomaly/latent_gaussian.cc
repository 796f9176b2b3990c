#include "anomaly/latent_gaussian.h"

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "util/error.h"

namespace bottleneck {
namespace {

// Logs of tiny scores stay finite: an exact reconstruction is not minus infinity.
double safe_log(double v) { return std::log(std::max(v, 1e-30)); }

void mean_std(const std::vector<double>& v, double* mean, double* std) {
  double s = 0, ss = 0;
  for (double x : v) s += x;
  *mean = s / static_cast<double>(v.size());
  for (double x : v) ss += (x - *mean) * (x - *mean);
  // A set whose scores are all equal still gets a usable scale.
  *std = std::max(std::sqrt(ss / static_cast<double>(v.size())), 1e-12);
}

}  // namespace

double LatentGaussian::distance(const float* code, int64_t length) const {
  if (length != dims)
    throw Error(ErrorKind::kInvalidData, "", "code of " + std::to_string(length) + " numbers; the latent Gaussian has " +
                                                 std::to_string(dims));
  std::vector<double> d(static_cast<size_t>(dims));
  for (int64_t i = 0; i < dims; ++i) d[i] = static_cast<double>(code[i]) - mean[i];
  double sum = 0;
  for (int64_t i = 0; i < dims; ++i) {
    const double* row = precision.data() + i * dims;
    double r = 0;
    for (int64_t j = 0; j < dims; ++j) r += row[j] * d[j];
    sum += d[i] * r;
  }
  return std::max(sum, 0.0);
}

double LatentGaussian::blend(double coarse, double dist) const {
  return (safe_log(coarse) - log_coarse_mean) / log_coarse_std + (safe_log(dist) - log_distance_mean) / log_distance_std;
}

LatentGaussian fit_latent_gaussian(const std::vector<float>& codes, int64_t dims, const std::vector<double>& coarse,
                                   std::string* why) {
  LatentGaussian g;
  const int64_t n = static_cast<int64_t>(coarse.size());
  if (dims > kMaxLatentDims) {
    *why = "the code has " + std::to_string(dims) + " numbers, more than the " + std::to_string(kMaxLatentDims) +
           " a latent Gaussian is fitted for";
    return g;
  }
  if (dims <= 0 || static_cast<int64_t>(codes.size()) != n * dims) {
    *why = "the codes differ in length (images of different sizes)";
    return g;
  }
  if (n <= dims) {
    *why = std::to_string(n) + " normal images for a code of " + std::to_string(dims) +
           " numbers; the latent scores need more images than numbers";
    return g;
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor z = torch::from_blob(const_cast<float*>(codes.data()), {n, dims}, torch::kFloat).to(torch::kDouble);
  const torch::Tensor mu = z.mean(0);
  const torch::Tensor centred = z - mu;
  torch::Tensor cov = centred.t().mm(centred) / static_cast<double>(n - 1);
  const double shrink = kLatentRidge * cov.trace().item<double>() / static_cast<double>(dims);
  cov = cov + std::max(shrink, 1e-12) * torch::eye(dims, torch::kDouble);
  const torch::Tensor precision = torch::linalg::inv(cov).contiguous();
  g.present = true;
  g.dims = dims;
  g.count = n;
  g.mean.assign(mu.data_ptr<double>(), mu.data_ptr<double>() + dims);
  g.precision.assign(precision.data_ptr<double>(), precision.data_ptr<double>() + dims * dims);
  std::vector<double> log_coarse, log_distance;
  for (int64_t i = 0; i < n; ++i) {
    log_coarse.push_back(safe_log(coarse[i]));
    log_distance.push_back(safe_log(g.distance(codes.data() + i * dims, dims)));
  }
  mean_std(log_coarse, &g.log_coarse_mean, &g.log_coarse_std);
  mean_std(log_distance, &g.log_distance_mean, &g.log_distance_std);
  return g;
}

}  // namespace bottleneck

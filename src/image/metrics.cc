#include "image/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include <torch/torch.h>

#include "util/error.h"
#include "util/text_format.h"

namespace bottleneck {
namespace {

// SSIM window: 11 taps, sigma 1.5 (skimage: truncate 3.5 -> radius int(3.5 * 1.5 + 0.5) = 5).
constexpr int kWindow = 11;
constexpr double kSigma = 1.5;

// Checks the pair and returns both as N x C x H x W float64 on their device.
std::pair<at::Tensor, at::Tensor> as_batches(const at::Tensor& a, const at::Tensor& b,
                                             const char* metric) {
  const std::string name(metric);
  if (!a.defined() || !b.defined()) throw UsageError(name + ": undefined tensor");
  if (a.dim() != 3 && a.dim() != 4)
    throw UsageError(name + ": expected C x H x W or N x C x H x W images, got " + shape_text(a.sizes().vec()));
  if (a.sizes() != b.sizes())
    throw UsageError(name + ": image shapes differ (" + shape_text(a.sizes().vec()) + " vs " + shape_text(b.sizes().vec()) +
                     ")");
  if (a.numel() == 0) throw UsageError(name + ": empty images (" + shape_text(a.sizes().vec()) + ")");
  auto to4 = [&](const at::Tensor& t) {
    at::Tensor d = t.to(a.device(), at::kDouble);
    return d.dim() == 3 ? d.unsqueeze(0) : d;
  };
  return {to4(a), to4(b)};
}

}  // namespace

double psnr(const at::Tensor& a, const at::Tensor& b, double peak) {
  if (!(peak > 0) || !std::isfinite(peak)) throw UsageError("psnr: peak must be > 0");
  auto [x, y] = as_batches(a, b, "psnr");
  at::Tensor mse = (x - y).pow(2).flatten(1).mean(1).cpu();
  double sum = 0;
  const auto acc = mse.accessor<double, 1>();
  for (int64_t i = 0; i < acc.size(0); ++i) {
    sum += acc[i] == 0 ? std::numeric_limits<double>::infinity()
                       : 10 * std::log10(peak * peak / acc[i]);
  }
  return sum / static_cast<double>(acc.size(0));
}

// The five local statistics (means, second moments, cross moment) are filtered in one grouped,
// separable 'valid' convolution: the Gaussian window is the outer product of the normalised 1-D
// kernel, exactly what skimage's gaussian_filter applies away from the border it later crops.
double ssim(const at::Tensor& a, const at::Tensor& b, double data_range) {
  if (!(data_range > 0) || !std::isfinite(data_range))
    throw UsageError("ssim: data_range must be > 0");
  auto [x, y] = as_batches(a, b, "ssim");
  const int64_t c = x.size(1), h = x.size(2), w = x.size(3);

  // A side shorter than the window gets the central taps that fit (an odd count, renormalised):
  // skimage refuses such images, but a 1 x 5000 strip in a folder must not stop a validation or
  // an evaluation. Images of at least 11 x 11 are unaffected.
  const auto options = x.options();  // (C++17 lambdas cannot capture structured bindings)
  auto kernel = [&](int64_t side) {
    const int64_t n = std::min<int64_t>(kWindow, side % 2 ? side : side - 1);
    at::Tensor taps = at::arange(n, options) - (n - 1) / 2;
    at::Tensor g = at::exp(-0.5 * taps * taps / (kSigma * kSigma));
    return g / g.sum();
  };
  const at::Tensor gv = kernel(h), gh = kernel(w);
  const int64_t groups = 5 * c;
  at::Tensor wv = gv.view({1, 1, -1, 1}).expand({groups, 1, gv.size(0), 1}).contiguous();
  at::Tensor wh = gh.view({1, 1, 1, -1}).expand({groups, 1, 1, gh.size(0)}).contiguous();

  at::Tensor stack = at::cat({x, y, x * x, y * y, x * y}, 1);
  // Explicit arrays: a literal 0 for the padding would also match the string ("valid") overload.
  const int64_t ones[2] = {1, 1}, zeros[2] = {0, 0};
  const at::IntArrayRef stride(ones), padding(zeros), dilation(ones);
  at::Tensor f = at::conv2d(stack, wv, {}, stride, padding, dilation, groups);
  f = at::conv2d(f, wh, {}, stride, padding, dilation, groups);
  at::Tensor mx = f.narrow(1, 0, c), my = f.narrow(1, c, c);
  at::Tensor vx = f.narrow(1, 2 * c, c) - mx * mx;
  at::Tensor vy = f.narrow(1, 3 * c, c) - my * my;
  at::Tensor vxy = f.narrow(1, 4 * c, c) - mx * my;

  const double c1 = std::pow(0.01 * data_range, 2), c2 = std::pow(0.03 * data_range, 2);
  at::Tensor map = ((2 * mx * my + c1) * (2 * vxy + c2)) /
                   ((mx * mx + my * my + c1) * (vx + vy + c2));
  // Every image has the same number of values, so the mean over all of them is the batch mean of
  // the per-image means.
  return map.mean().item<double>();
}

double estimate_noise_sigma(const at::Tensor& image) {
  constexpr int64_t kBlock = 16;
  if (image.dim() != 3 || image.size(1) < kBlock || image.size(2) < kBlock)
    throw Error(ErrorKind::kInvalidData, "", "noise estimation needs a C x H x W image of at least 16 x 16 pixels");
  const int64_t c = image.size(0), h = image.size(1) / kBlock, w = image.size(2) / kBlock;
  const at::Tensor x = image.to(at::kCPU, at::kDouble)
                           .narrow(1, 0, h * kBlock)
                           .narrow(2, 0, w * kBlock)
                           .reshape({c, h, kBlock, w, kBlock})
                           .permute({0, 1, 3, 2, 4})
                           .reshape({c, h * w, kBlock * kBlock});
  const at::Tensor variances = x.var(2, /*unbiased=*/true);  // C x blocks
  const at::Tensor low = std::get<0>(variances.sort(1)).select(1, static_cast<int64_t>(0.05 * static_cast<double>(h * w - 1)));
  return low.sqrt().mean().item<double>();
}

}  // namespace bottleneck

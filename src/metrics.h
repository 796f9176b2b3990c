#pragma once

namespace at { class Tensor; }

namespace bottleneck {

// Both take C x H x W or N x C x H x W floats; for a batch they return the mean over images.
// Inputs are used as given (callers clip outputs to [0,1] first, per the standard protocol).

// 10 log10(peak^2 / MSE); +inf for identical images.
double psnr(const at::Tensor& a, const at::Tensor& b, double peak = 1.0);

// SSIM of Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, 'valid' region
// only (equals skimage's structural_similarity with gaussian_weights=True, sigma=1.5,
// use_sample_covariance=False); mean over channels and pixels. A side shorter than 11 pixels
// uses the window's central taps that fit (skimage refuses such images).
double ssim(const at::Tensor& a, const at::Tensor& b, double data_range = 1.0);

}  // namespace bottleneck

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

// Standard deviation of additive noise in one noisy image (C x H x W in [0,1]; at least 3 x 3),
// estimated without the clean image by Immerkaer's method ("Fast noise variance estimation",
// CVIU 1996): the image convolved with the difference of two Laplacians, which cancels smooth
// content, sigma = sqrt(pi / 2) / (6 (W - 2) (H - 2)) * sum |I * M|; mean over channels. On the
// 0-1 scale. Spatially correlated noise (demosaiced camera noise) has less energy at the high
// frequencies the mask sees, so it reads lower than its true standard deviation.
double estimate_noise_sigma(const at::Tensor& image);

}  // namespace bottleneck

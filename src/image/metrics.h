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

// Standard deviation of the noise in one noisy image (C x H x W in [0,1], at least 16 x 16),
// estimated without the clean image from its flattest blocks (the block-variance method of Lee
// and Hoppel, 1989): the variances of the 16 x 16 blocks (each block's mean removed), their 5th
// percentile per channel, square root, mean over channels; 0-1 scale. Measured against the true
// RMS: white Gaussian noise on Kodak24 at sigma 5 / 15 / 25 / 50 reads 1.27 / 1.02 / 0.99 / 0.96
// of it (texture adds to the flattest blocks at low noise); real camera noise (realnoise-cc15)
// reads 0.65 of it, as its flattest blocks are dark ones and dark pixels are less noisy.
// (Immerkaer's Laplacian estimator reads 0.22 there: demosaiced noise is spatially correlated.)
double estimate_noise_sigma(const at::Tensor& image);

}  // namespace bottleneck

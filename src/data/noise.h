#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace at { class Tensor; }

namespace bottleneck {

// A noise model and its parameters. Every parameter is a range [lo, hi]; a fixed value has
// lo == hi, a range is drawn uniformly per image (blind training).
//
//   none                         no noise
//   gaussian:S | gaussian:A-B    additive white Gaussian, sigma S on the 0-255 scale
//   poisson:P  | poisson:A-B     shot noise, P photons at white: y = Poisson(P x) / P
//   poisson-gaussian:P/S         shot noise with P photons at white plus read noise sigma S (0-255)
//   saltpepper:F                 fraction F of pixels set to 0 or 1 (half each)
//   speckle:S                    multiplicative: y = x + x n, n ~ N(0, S^2), S unitless
//   camera | camera:SHOT[/JPEG]  a camera's raw noise carried through its processing to 8-bit
//                                sRGB (camera_noise.h): SHOT is the range of shot-noise gains,
//                                drawn log-uniformly (default 0.0001-0.012), JPEG the fraction of
//                                images also JPEG-compressed (default 0.5)
//
// Following the standard denoising protocol, the result is not clipped nor quantised, except
// camera noise, which models the 8-bit files cameras write.
enum class NoiseKind { kNone, kGaussian, kPoisson, kPoissonGaussian, kSaltPepper, kSpeckle, kCamera };

struct Range {
  double lo = 0;
  double hi = 0;
};

struct NoiseSpec {
  NoiseKind kind = NoiseKind::kNone;
  Range a;  // sigma (gaussian), photons (poisson, poisson-gaussian), fraction, speckle sigma
  Range b;  // read-noise sigma of poisson-gaussian; JPEG fraction of camera; unused otherwise
};

// Parses the syntax above; throws UsageError quoting the text and the expected form.
NoiseSpec parse_noise(const std::string& text);
// Comma-separated list, e.g. "gaussian:15,gaussian:25".
std::vector<NoiseSpec> parse_noise_list(const std::string& text);
// Canonical text that parse_noise reads back to the same spec.
std::string to_string(const NoiseSpec& spec);

// Noisy copy of clean (N x C x H x W or C x H x W, floats in [0,1]); parameters drawn per image.
// The result depends only on (clean, spec, seed), whatever the device or thread count: random
// numbers are drawn on the CPU from a generator seeded with `seed`.
at::Tensor add_noise(const at::Tensor& clean, const NoiseSpec& spec, uint64_t seed);

}  // namespace bottleneck

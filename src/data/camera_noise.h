#pragma once

#include <array>
#include <cstdint>

namespace at {
class Generator;
class Tensor;
}  // namespace at

namespace bottleneck {

// Realistic camera noise for training photo denoisers: the noise of a raw sensor, carried
// through a camera's processing to an 8-bit (often JPEG) sRGB image. Follows "Unprocessing
// Images for Learned Raw Denoising" (Brooks et al., CVPR 2019) for the inversion of the
// pipeline and the noise levels, and CBDNet (Guo et al., CVPR 2019) for the JPEG step:
//
//   sRGB x --inverse tone curve, gamma 2.2--> linear RGB --rgb2cam, 1/gains--> camera RGB L
//     --RGGB mosaic--> Bayer B --+ N(0, shot * B + read)--> noisy Bayer B'
//   B and B' each --gains, demosaic (OpenCV), cam2rgb, gamma, tone--> P(B), P(B')
//   n = NR(P(B') - P(B))   in-camera noise reduction: chroma strongly, luma mildly
//   y = quantise8(x + n), then JPEG at a random quality with probability p.
//
// The noise is carried to sRGB as the difference of the two processed images, so the result is
// the clean image plus noise with the camera's signal dependence (brighter = noisier in linear
// space, compressed by the tone curve), its demosaicing correlation (neighbouring pixels share
// samples: R and B are interpolated from a quarter of the sites, G from half) and its
// cross-channel mixing (the colour matrix), but the clean signal is not blurred by a second
// demosaicing: the clean images of real pairs (the mean of many shots) carry no extra blur
// either. With zero noise the result is the clean image up to the 8-bit quantisation.
//
// The noise reduction stands for what every camera's (and raw converter's) processing does
// before it writes a JPEG: colour-difference noise is smoothed hard (it is what viewers object
// to most and what demosaicing leaves coarse), luminance noise lightly (to keep detail). It is
// applied to the noise field alone, as the camera's NR leaves the static, averaged scene of a
// real pair's clean image unchanged. Without it, the channels' noise is nearly uncorrelated and
// its colour blotches are far stronger than in camera JPEGs.
//
// Stage parameters, drawn per image (uniform unless said otherwise):
//   colour matrix  rgb2cam: a random convex combination of four cameras' XYZ->camera
//                  matrices (Brooks et al.'s), times sRGB->XYZ, rows normalised to sum 1
//   gains          red 1.9-2.4, blue 1.5-1.9 (white balance), overall 1 / N(0.8, 0.1)
//                  (exposure); inverted with highlights preserved (Brooks' safe inverse)
//   shot noise     log-uniform over [shot.lo, shot.hi] (default 1e-4 to 1.2e-2: ISO ~100 to
//                  ~6400 on a full-frame sensor); read noise variance
//                  exp(2.18 ln(shot) + 1.20 + N(0, 0.26^2)) (their fit over many cameras)
//   demosaicing    OpenCV bilinear or edge-aware (half each)
//   chroma NR      Cb/Cr (B - Y, R - Y; BT.601 luma) Gaussian-blurred, sigma 0-3 px
//   luma NR        Y blended with its Gaussian blur (sigma 1 px), weight 0-0.5
//   JPEG           with probability jpeg_probability, OpenCV's encoder at quality 70-98
struct CameraNoiseParams {
  double shot_lo = 1e-4;            // shot-noise gain range (variance per unit of linear signal)
  double shot_hi = 1.2e-2;          // 0 <= shot_lo <= shot_hi; 0 - 0 is no noise
  double jpeg_probability = 0.5;    // 0 to 1
};

// One image's draws from the ranges above, made explicit so that tests can fix them.
struct CameraDraw {
  std::array<double, 9> rgb2cam{};  // row-major 3x3, rows sum to 1
  double red_gain = 2, blue_gain = 1.7, rgb_gain = 1.25;
  double shot = 0, read = 0;        // variance = shot * signal + read (linear, 0-1 scale)
  bool edge_aware = false;
  double chroma_sigma = 0;          // chroma NR blur, pixels (0 = none)
  double luma_blend = 0;            // luma NR: weight of the blurred luma, 0 to 1
  int jpeg_quality = 0;             // 0 = no JPEG
};

CameraDraw draw_camera(const CameraNoiseParams& params, at::Generator& gen);

// The stages, on one C x H x W float image in [0, 1] (C = 3). Exposed for tests.
at::Tensor unprocess(const at::Tensor& srgb, const CameraDraw& d);        // -> camera RGB, linear
at::Tensor mosaic_rggb(const at::Tensor& camera_rgb);                      // -> 1 x H x W Bayer
at::Tensor add_sensor_noise(const at::Tensor& bayer, double shot, double read, at::Generator& gen);
at::Tensor process(const at::Tensor& bayer, const CameraDraw& d);         // -> sRGB, not quantised
at::Tensor reduce_noise(const at::Tensor& noise, double chroma_sigma, double luma_blend);  // 3 x H x W

// The whole pipeline on one C x H x W float image (C = 1 or 3; a gray image is treated as a
// colourless photo and the mean of the channels is returned). The result is 8-bit quantised.
at::Tensor add_camera_noise(const at::Tensor& clean, const CameraNoiseParams& params, at::Generator& gen);

}  // namespace bottleneck

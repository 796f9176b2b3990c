#pragma once

// The codec's transforms over large images, tile by tile, so that memory is bounded by the tile
// and not by the image: untiled, a 2048 x 2048 photo took 2.5 GB to encode (README). The tiles
// come from the denoiser's planner (inference/tiler.h, plan_tiles): cores that partition the
// image, each inside a window that adds the transform's receptive margin, starting on the
// latent grid (multiples of CodecModelImpl::kStride) so that every kept latent or pixel is
// computed from exactly the values the whole-image transform uses.
//
// Exactness: g_a and g_s are four 5 x 5 stride-2 (transposed) convolutions each, with 1 x 1 GDN
// between them; each layer reaches 2 samples of its input, 2 x (1 + 2 + 4 + 8) = 30 image
// pixels in all, rounded up to the stride: 32 pixels (2 latents) of margin. The zero padding at
// an interior window edge then reaches only latents and pixels outside the core. What is left
// is float rounding, which depends on the shapes the convolution kernels see: latents agree to
// ~1e-6 (a symbol can differ only where a value lies that close to a rounding boundary) and
// pixels to within one 8-bit level (codec_tiles_test measures both).

#include <cstdint>
#include <functional>

#include <opencv2/core/mat.hpp>
#include <torch/torch.h>

#include "codec/codec_model.h"

namespace bottleneck {

// Side of a tile's core in image pixels (rounded up to a multiple of 16); images no larger run
// whole. 768: Kodak's 768 x 512 photos run whole, and a window of 832 x 832 holds ~0.4 GB of
// activations in the N=64 GDN model (the whole 2048 x 2048 image took 2.5 GB), while margins add
// 17% to the work (512: 27%). 0 = whole images whatever their size.
inline constexpr int kDefaultCodecTile = 768;

// The receptive margin of g_a and of g_s, in image pixels, a multiple of kStride: 32.
int64_t codec_tile_margin();

// g_a of an 8-bit image (gray or BGR as OpenCV decodes it, CV_8U; converted to the model's
// channels as to_channels does), padded to the stride by replicating edges: 1 x M x h x w,
// h = ceil(H / 16), w = ceil(W / 16). Equals m.analysis(pad_to_stride(x)) up to float rounding
// (exactly, when the image is one tile).
torch::Tensor tiled_analysis(CodecModelImpl& m, const cv::Mat& image, int tile = kDefaultCodecTile);

// g_s of latents made per window by `latents` (given a window of the latent grid, [y0, y1) x
// [x0, x1), it returns 1 x M x (y1 - y0) x (x1 - x0) values, e.g. dequantised symbols times the
// inverse gains), cropped to height x width pixels: `sink` receives each core's pixels, C x h x w
// (the model's channels, not clamped), and its top-left corner in the image. Cores partition the
// image. Equals m.synthesis of the whole grid up to float rounding (exactly, in one tile).
using LatentWindow = std::function<torch::Tensor(int64_t y0, int64_t y1, int64_t x0, int64_t x1)>;
using PixelSink = std::function<void(int64_t y, int64_t x, const torch::Tensor& core)>;
void tiled_synthesis(CodecModelImpl& m, int64_t latent_height, int64_t latent_width, const LatentWindow& latents,
                     int64_t height, int64_t width, const PixelSink& sink, int tile = kDefaultCodecTile);

}  // namespace bottleneck

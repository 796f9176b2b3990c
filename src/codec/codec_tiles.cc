#include "codec/codec_tiles.h"

#include <algorithm>

#include <opencv2/core.hpp>

#include "image/image_io.h"
#include "inference/tiler.h"
#include "util/error.h"

namespace bottleneck {
namespace {

constexpr int64_t kStride = CodecModelImpl::kStride;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The reach of g_a (and, mirrored, of g_s) in image pixels: a 5 x 5 stride-2 layer reaches 2
// samples of its input, and layer i's input samples are 2^i pixels apart.
constexpr int64_t receptive_radius() {
  int64_t radius = 0;
  for (int64_t layer = 0, step = 1; step < kStride; ++layer, step *= 2) radius += 2 * step;
  return radius;
}
static_assert(receptive_radius() == 30, "four 5x5 stride-2 layers reach 30 pixels");

void check_tile(int tile) {
  if (tile < 0) throw UsageError("codec tile must be >= 0 pixels, got " + std::to_string(tile));
}

}  // namespace

int64_t codec_tile_margin() { return ceil_div(receptive_radius(), kStride) * kStride; }

torch::Tensor tiled_analysis(CodecModelImpl& m, const cv::Mat& image, int tile) {
  check_tile(tile);
  if (image.empty() || image.depth() != CV_8U || (image.channels() != 1 && image.channels() != 3))
    throw Error("tiled_analysis: expected a gray or BGR image of 8-bit samples");
  const int64_t height = image.rows, width = image.cols;
  torch::Tensor y;
  for (const Tile& t : plan_tiles(height, width, tile, static_cast<int>(kStride), static_cast<int>(codec_tile_margin()))) {
    const cv::Mat window = image(cv::Rect(static_cast<int>(t.x0), static_cast<int>(t.y0), static_cast<int>(t.x1 - t.x0),
                                          static_cast<int>(t.y1 - t.y0)));
    // Windows start on the latent grid; one that reaches the bottom or right edge is padded by
    // replicating it, as the whole image is.
    const torch::Tensor x = to_channels(mat_to_tensor(window), m.spec().channels).unsqueeze(0);
    const torch::Tensor yw = m.analysis(CodecModelImpl::pad_to_stride(x));
    if (!y.defined()) y = torch::empty({1, yw.size(1), ceil_div(height, kStride), ceil_div(width, kStride)});
    const int64_t ly0 = t.core_y0 / kStride, ly1 = ceil_div(t.core_y1, kStride);
    const int64_t lx0 = t.core_x0 / kStride, lx1 = ceil_div(t.core_x1, kStride);
    const int64_t oy = (t.core_y0 - t.y0) / kStride, ox = (t.core_x0 - t.x0) / kStride;
    y.slice(2, ly0, ly1).slice(3, lx0, lx1).copy_(yw.slice(2, oy, oy + ly1 - ly0).slice(3, ox, ox + lx1 - lx0));
  }
  return y;
}

void tiled_synthesis(CodecModelImpl& m, int64_t latent_height, int64_t latent_width, const LatentWindow& latents,
                     int64_t height, int64_t width, const PixelSink& sink, int tile) {
  check_tile(tile);
  if (latent_height != ceil_div(height, kStride) || latent_width != ceil_div(width, kStride))
    throw Error("tiled_synthesis: a " + std::to_string(latent_height) + " x " + std::to_string(latent_width) +
                " latent grid does not fit a " + std::to_string(height) + " x " + std::to_string(width) + " image");
  // Planned on the latent grid (multiple 1), cores of ceil(tile / 16) latents, margins of 2.
  const int latent_tile = static_cast<int>(ceil_div(tile, kStride));
  const int latent_margin = static_cast<int>(codec_tile_margin() / kStride);
  for (const Tile& t : plan_tiles(latent_height, latent_width, latent_tile, 1, latent_margin)) {
    const torch::Tensor window = latents(t.y0, t.y1, t.x0, t.x1);
    const torch::Tensor out = m.synthesis(window);
    const int64_t py0 = t.core_y0 * kStride, py1 = std::min(t.core_y1 * kStride, height);
    const int64_t px0 = t.core_x0 * kStride, px1 = std::min(t.core_x1 * kStride, width);
    const int64_t oy = py0 - t.y0 * kStride, ox = px0 - t.x0 * kStride;
    sink(py0, px0, out[0].slice(1, oy, oy + py1 - py0).slice(2, ox, ox + px1 - px0));
  }
}

}  // namespace bottleneck

#pragma once

#include <cstdint>
#include <vector>

#include <c10/core/Device.h>
#include <opencv2/core/mat.hpp>
#include <torch/types.h>

namespace bottleneck {

class InferenceModel;

// How a model is run over whole images.
struct TileOptions {
  int tile = 1024;    // side of a tile's core (the part kept), pixels; rounded up to the model's
                      // size multiple. 0 = every image in one pass, whatever its size. Images no
                      // larger than the tile run whole. Tiles bound memory whatever the image
                      // size, at a price in time for the context margins: on Kodak's 768 x 512
                      // photos the shipped colour model took 3.55 s/MP with tile 512 (two tiles
                      // each), 3.08 with 1024 and 2.96 whole (scripts/bench/run.sh, row 3e).
  int batch = 4;      // tiles or small images of equal shape per forward pass, >= 1
  int64_t batch_pixels = 1 << 20;  // ...and at most this many window pixels per pass (one window
                                   // always fits); 0 = no limit. Bounds peak memory when tiles
                                   // are large.
  int margin = -1;    // context pixels around each core, rounded up to the size multiple;
                      // -1 = the model's receptive radius (exact). Smaller values are for tests.
  c10::Device device = c10::Device(c10::kCPU);  // where the model lives; inputs are moved there
                                                // per batch and results come back to the CPU
  double strength = 1;  // how much of the model's change to keep, 0 to 2: output = input +
                        // strength x (model(input) - input). 1 = the model's own estimate, 0 =
                        // the input unchanged, 0.5 = half the predicted noise removed (keeps some
                        // grain), above 1 removes more than the model estimates (smoother)
};

// One tile of an image: the model sees the window, the core of its output is kept. Cores
// partition the image; all coordinates are in image pixels, [begin, end).
struct Tile {
  int64_t y0, y1, x0, x1;          // window
  int64_t core_y0, core_y1, core_x0, core_x1;
};

// Tiles for an H x W image. Cores and windows start at multiples of `multiple`, so the model's
// stride-2 grid matches that of whole-image inference, and a window reaches the image's bottom
// or right edge whenever its core does, so the model pads it exactly as it pads the whole image.
// Interior window sides lie `margin` (rounded up to `multiple`) beyond the core. Cores are as
// equal as the multiple allows so that most windows share a shape and batch together.
// tile <= 0 or an image no larger than the tile gives one tile covering everything.
std::vector<Tile> plan_tiles(int64_t height, int64_t width, int tile, int multiple, int margin);

// An image run_tiled reads windows of and writes kept cores into, both as float C x h x w in
// the model's channels and [0,1] scale. Implementations convert one window at a time: an 8-bit
// photo held whole as float input and float output took 8x its decoded size (1.9 GB peak for a
// 48-megapixel colour photo).
class TiledImage {
 public:
  virtual ~TiledImage() = default;
  virtual int64_t height() const = 0;
  virtual int64_t width() const = 0;
  virtual torch::Tensor read(const Tile& t) const = 0;                   // the window
  virtual void write(const Tile& t, const torch::Tensor& core) = 0;       // the core's output
};

// run_tiled over any TiledImages; the model's channels must match what each one reads.
void run_tiled(InferenceModel& model, const std::vector<TiledImage*>& images, const TileOptions& options);

// Runs the model over images (each C x H x W float on the CPU, C = model.channels(), sizes
// free) tile by tile and returns the outputs (same shapes, on the CPU, not clipped). With the
// default margin the result equals whole-image inference up to float rounding (~1e-6): every
// kept pixel sees exactly the context it sees in the whole image. Windows of equal shape, from
// one image or several, share forward passes of up to `batch`.
std::vector<torch::Tensor> run_tiled(InferenceModel& model, const std::vector<torch::Tensor>& images,
                                     const TileOptions& options);

// run_tiled for images of 1 or 3 channels whatever the model's:
//  - a colour image through a gray model: R, G and B are denoised separately, each as a gray
//    image (the planes batch together), and stacked back;
//  - a gray image through a colour model: replicated to R = G = B, denoised, and the BT.601 luma
//    of the result kept, so the output is gray again.
// Outputs have the input's channel count and size, on the CPU, clipped to [0,1].
std::vector<torch::Tensor> denoise_images(InferenceModel& model, const std::vector<torch::Tensor>& images,
                                          const TileOptions& options);

// denoise_images for images as OpenCV decodes them (gray or BGR; 8-bit, 16-bit or float samples
// in [0,1]): returns images of the same size, layout and depth, equal to
// tensor_to_mat(denoise_images(mat_to_tensor(image))) (rounded and saturated alike), while only
// the windows of one forward pass exist as float.
std::vector<cv::Mat> denoise_mats(InferenceModel& model, const std::vector<cv::Mat>& images,
                                  const TileOptions& options);

}  // namespace bottleneck

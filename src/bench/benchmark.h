#pragma once

#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "image/image_io.h"
#include "util/log.h"
#include "runtime/runtime.h"
#include "inference/tiler.h"

namespace bottleneck {

// `bottleneck bench`: how fast this machine runs a denoiser, measured in one process against the
// references that give the number a meaning: OpenCV's non-local means (the classic tool), a
// DnCNN-sized network (17 convolutions of 64 channels, random weights: speed only) and the fp32
// matrix-multiply rate of this CPU (torch::mm on 2048 x 2048), which bounds any convolution.
// Every method sees the same images with the same Gaussian noise, so the PSNRs compare too.
// Runs under the process's thread settings (--threads), so running it twice, with 1 and with 2
// threads, gives the thread scaling.
struct BenchmarkOptions {
  std::string images;               // an image file or a folder (recursive); required
  std::string model;                // "" = the shipped denoiser for the first image's channels
  std::string precision = "fp32";   // of the model: "fp32" or "bf16"
  TileOptions tiling;               // how the model runs, as in `denoise`
  double sigma = 25;                // Gaussian noise (0-255 scale) added to every image
  double min_seconds = 3;           // each speed measurement repeats its work at least this long
                                    // (and covers at least one image)
  int max_images = 0;               // use the first N images only; 0 = all
  bool nlm = true;                  // time OpenCV's fastNlMeansDenoising(Colored)
  bool dncnn = true;                // time the DnCNN-sized network
  bool matmul = true;               // measure the fp32 matrix-multiply rate
  bool flush_denormals_ab = true;   // time the model with denormal flushing off and on
  bool native_ab = true;            // time the model without the inference optimisation too
  std::vector<int> tiles;           // also time the model at these tile sizes (0 = whole image)
  bool train = true;                // time training steps of the model's architecture
  int train_batch = 8;              // patches per training step (the shipped recipe's)
  int train_patch = 96;             // patch side, pixels
  int64_t max_pixels = kDefaultMaxPixels;
};

// One timed method: work done over wall time, and quality where it denoises.
struct Timing {
  double seconds = 0;
  double megapixels = 0;            // image area processed (repeats included)
  double seconds_per_megapixel() const { return megapixels > 0 ? seconds / megapixels : 0; }
  double psnr = std::numeric_limits<double>::quiet_NaN();  // dB, mean over the distinct images;
                                                           // NaN for speed-only runs
};

struct BenchmarkResult {
  std::string model_path;           // the model file
  std::string arch;                 // its ArchSpec JSON
  int channels = 0;
  int threads = 0;                  // torch intra-op threads during the run
  std::string cpu;                  // CPU model name
  bool cpu_has_bf16 = false;        // AVX512-BF16 or AMX-BF16: bf16 convolutions run natively
  int images = 0;                   // distinct images used
  double noisy_psnr = 0;            // of the noisy inputs (clipped), dB
  double model_macs_per_pixel = 0;  // of the whole-image forward pass
  Timing model;                     // the model, default tiling, as `denoise` runs it
  Timing model_flush;               // the same with denormals flushed to zero (NaN psnr)
  Timing model_native;              // fp32 CPU: the native modules, not optimised for inference
  Timing nlm;                       // OpenCV NLM on the 8-bit clipped noisy image
  Timing dncnn;                     // DnCNN-sized network, whole images
  double dncnn_macs_per_pixel = 0;
  double matmul_gflops = 0;         // fp32 torch::mm, 2048 x 2048
  std::vector<std::pair<int, Timing>> tile_timings;  // (tile, timing) for options.tiles
  int train_batch = 0, train_patch = 0;
  double train_patches_per_second = 0;   // forward + backward + Adam on a fixed batch (no loader),
                                         // channels-last as the trainer runs on the CPU
  double train_patches_per_second_nchw = 0;  // the same in the default NCHW layout
  double loader_patches_per_second = 0;  // the training data pipeline alone, one worker
};

// Runs every measurement the options enable; throws UsageError for bad options and Error for an
// unreadable model or image.
BenchmarkResult run_benchmark(const BenchmarkOptions& options, const Logger& log);

// Human-readable table of the result with the derived ratios (speed-ups, GFLOP/s, fraction of
// the matrix-multiply rate).
std::string benchmark_table(const BenchmarkResult& result);

// Every number, for scripts (NaN written as null).
std::string benchmark_json(const BenchmarkResult& result);


}  // namespace bottleneck

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "image/image_io.h"
#include "util/log.h"
#include "inference/tiler.h"

namespace bottleneck {

// `bottleneck eval`: how good is a model, against its noisy input and against OpenCV's
// non-local means, on clean images with synthetic noise.
//
// Protocol: each clean image is converted to the model's channels (colour -> gray by BT.601 luma,
// gray -> colour by replication), noise is added to the float image in [0,1] (neither clipped
// nor quantised) with a seed that depends only on `seed` and the image's relative path
// (file_noise_seed, as `denoise --add-noise` uses), and the model sees that float image. PSNR
// and SSIM are measured against the clean float image on outputs clipped to [0,1]; the noisy
// input is scored clipped too. Non-local means needs 8-bit input, so it gets the clipped noisy
// image rounded to 8 bits (its output is 8-bit as well): the classic tool as people use it.
struct EvalOptions {
  std::string model;                  // model file (checkpoint or TorchScript), or a shipped family
                                      // ("photo", "gaussian": shipped_models.h); "" = the shipped
                                      // denoiser for the first image's channels (gray or colour)
  std::string clean;                  // folder of clean images (recursive) or one image; required
  std::string noise = "gaussian:25";  // comma-separated noise specs, one table row each
  std::string pairs;                  // real noisy images (folder matched to `clean` by relative
                                      // path, or one image): evaluate on them instead of `noise`;
                                      // NLM's h then comes from a noise estimate of each image
  uint64_t seed = 0;                  // base seed of the noise
  bool nlm = true;                    // also run OpenCV's fastNlMeansDenoising(Colored)
  double nlm_h = 0;                   // > 0: NLM's h (and hColor) for every image, 0-255 scale,
                                      // e.g. to tune it on a set; 0 = from each image's sigma
  int max_images = 0;                 // evaluate the first N images only; 0 = all
  TileOptions tiling;                 // how the model runs (tile, batch, device)
  std::string precision = "fp32";     // "fp32" or "bf16" (load_model's dtype)
  int64_t max_pixels = kDefaultMaxPixels;  // larger images are an error
  bool progress_tty = false;          // redraw the progress line in place
};

// Mean quality of one method over the images; NaN where it did not run.
struct MethodScore {
  double psnr = 0;               // dB, mean over images
  double ssim = 0;               // mean over images
  double seconds_per_megapixel = 0;  // wall time per megapixel of image (noisy: 0)
};

struct ImageScore {
  std::string name;  // path relative to the clean folder
  double noisy_psnr = 0, noisy_ssim = 0;
  double nlm_psnr = 0, nlm_ssim = 0;      // NaN when NLM did not run
  double model_psnr = 0, model_ssim = 0;
  double nlm_sigma = 0;                   // sigma NLM's h was set from (0-255), NaN if no NLM
  double noise_rms = 0;                   // RMS of noisy - clean (0-255): the true noise level
};

struct LevelResult {
  std::string noise;     // canonical spec text
  std::string nlm_note;  // how NLM's h was chosen, or why NLM did not run
  MethodScore noisy, nlm, model;
  std::vector<ImageScore> images;
};

struct EvalResult {
  std::string model;       // the model file
  std::string model_arch;  // its ArchSpec JSON
  std::string clean;       // the clean folder
  std::string pairs;       // the noisy folder of real pairs ("" = synthetic noise)
  int channels = 0;        // channels the images were evaluated in (the model's)
  uint64_t seed = 0;
  std::vector<LevelResult> levels;  // in the order of EvalOptions::noise
  std::vector<std::string> failures;  // "FILE: reason" of the files (and folders) that could not
                                      // be read, in listing order; they are not in `levels`
};

// Runs the evaluation; throws UsageError for bad options and Error(file, reason) for an
// unreadable model or when no image can be read. A clean file (or subfolder) that cannot be read
// (missing, corrupt, over max_pixels, no permission) is logged as a warning "FILE: reason",
// recorded in EvalResult::failures (which eval_table and eval_json show, so numbers over a
// shortened set are not mistaken for the whole set's) and left out; the rest is evaluated.
EvalResult evaluate(const EvalOptions& options, const Logger& log);

// A markdown table, one row per noise level: PSNR / SSIM of noisy, NLM and model, seconds per
// megapixel of NLM and model.
std::string eval_table(const EvalResult& result);
// Every number, per level and per image (NaN written as null).
std::string eval_json(const EvalResult& result);

// OpenCV's h for non-local means at noise sigma (0-255 scale), and hColor for colour images.
// The rule and the measurements behind it are in evaluator.cc.
double nlm_h(double sigma, int channels);

// OpenCV's non-local means as the classic tool is used: on the clipped noisy image (C x H x W
// float, 1 or 3 channels) rounded to 8 bits, h from nlm_h(sigma) or, if h > 0, h itself;
// returns the float result.
at::Tensor nlm_denoise(const at::Tensor& noisy, double sigma, double h = 0);

}  // namespace bottleneck

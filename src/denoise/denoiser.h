#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "image/image_io.h"
#include "util/log.h"
#include "inference/tiler.h"

namespace bottleneck {

// The folder job behind `bottleneck denoise`.
struct DenoiseOptions {
  std::string model;            // model file: a checkpoint or an exported TorchScript model, or a
                                // shipped family ("photo", "gaussian": shipped_models.h);
                                // "" = the shipped denoiser for each image's channels
  std::string input;            // an image file, or a folder searched recursively; required
  std::string output;           // output folder (created); the input's relative tree is mirrored
                                // in it, each file keeping its name, format, bit depth, size,
                                // channels and alpha; required. Files already there are refused
                                // (before any work) unless overwrite or skip_existing is set.
                                // For a lone input file, an `output` with an image extension that
                                // is not an existing folder is the output file itself
  std::string format;           // "" = each output keeps its input's format; else the extension
                                // of the one format all outputs are written in ("png", "tif",
                                // "jpg", ...): NAME[.SUFFIX].FORMAT
  std::string suffix;           // "" = outputs keep the input's file name; "dn" = NAME.dn.EXT.
                                // Required when `output` is the input folder or inside it
  std::string add_noise;        // noise spec added to each image before denoising (synthetic
                                // evaluation), e.g. "gaussian:25"; "" = none
  uint64_t seed = 0;            // base seed of add_noise; each file's noise depends only on it and
                                // the file's relative path (file_noise_seed), not on file order
  bool compare = false;         // also write NAME[.SUFFIX].compare.png beside each output:
                                // clean | noisy | denoised with PSNR/SSIM when add_noise is set,
                                // else input | denoised
  bool skip_existing = false;   // leave files whose outputs (and comparison) already exist
  bool overwrite = false;       // replace files already where outputs go (an earlier run's
                                // results); without it (or skip_existing) the job refuses them
  TileOptions tiling;           // tile size, batch and device of the model
  std::string precision = "fp32";  // "fp32" or "bf16" (load_model's dtype)
  int64_t max_pixels = kDefaultMaxPixels;  // larger images fail (decompression bombs)
  int prefetch = 2;             // images decoded ahead of the model, >= 1
  bool progress_tty = false;    // redraw the progress line in place (stderr is a terminal)
};

struct DenoiseReport {
  int64_t denoised = 0;
  int64_t skipped = 0;                // outputs existed (skip_existing)
  int64_t failed = 0;
  std::vector<std::string> failures;  // "FILE: reason": unlisted folders, then files in input order
  double megapixels = 0;              // of the denoised images
  double seconds = 0;                 // wall time of the job, model loading excluded
  // With add_noise: mean PSNR (dB) / SSIM over the denoised files of the clipped noisy input
  // and of the output, against the clean input; NaN otherwise.
  double noisy_psnr = 0, noisy_ssim = 0, denoised_psnr = 0, denoised_ssim = 0;
};

// Denoises every image under options.input. Problems with single files (unreadable, corrupt,
// too large, unwritable output) and with subfolders that cannot be listed are counted, logged
// as "FILE: reason" and the job goes on;
// problems with the job itself (an unreadable model, no images, an output folder that could overwrite the
// inputs, outputs that collide or already exist: plan_denoise in denoise_plan.h) throw:
// UsageError for bad options, Error otherwise. An image whose alpha its output format cannot
// store fails on its own (alpha_loss). Outputs are written atomically;
// inputs are never written to. Decoding runs one image ahead on a reader thread and encoding on
// a writer thread, overlapping the model.
DenoiseReport denoise(const DenoiseOptions& options, const Logger& log);

// "denoised 12, skipped 0, failed 1 (4.7 MP in 3.2 s)"
std::string summary_line(const DenoiseReport& report);

// Seed of the noise added to the file at `relative_path` ('/'-separated, relative to the input
// folder; a lone input file is its own name). `eval` uses the same seeds, so
// `denoise --add-noise` and `eval` see identical noisy images for the same seed.
uint64_t file_noise_seed(uint64_t seed, const std::string& relative_path);

}  // namespace bottleneck

#pragma once

// Validation of a denoiser during training: mean PSNR and SSIM of its output on fixed noisy
// images (synthetic noise from a fixed seed, or real noisy partners), against the noisy inputs'
// own figures, and clean | noisy | denoised strips of the first images.

#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/dataset.h"

namespace bottleneck {

class AutoencoderImpl;

struct DenoiseValidation {
  double psnr = 0, ssim = 0;              // of the network's output, mean over the images
  double psnr_noisy = 0, ssim_noisy = 0;  // of the inputs (clamped to [0, 1])
};

class Validator {
 public:
  // `samples`: how many of the first images get a strip (written by run(), under the names of
  // the images with '/' turned into '_' and a .png extension).
  Validator(std::vector<ValidationImage> images, torch::Device device, int samples);

  bool empty() const { return images_.empty(); }
  size_t size() const { return images_.size(); }
  // The inputs' mean figures (fixed for the run: the noise is).
  DenoiseValidation noisy() const;

  // Runs the model in eval mode (restored afterwards) without gradients. With a non-empty
  // `samples_dir`, writes the strips there (atomically).
  DenoiseValidation run(AutoencoderImpl& model, const std::string& samples_dir) const;

 private:
  std::vector<ValidationImage> images_;
  torch::Device device_;
  int samples_;
  std::vector<double> noisy_psnr_, noisy_ssim_;
};

}  // namespace bottleneck

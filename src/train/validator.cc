#include "train/validator.h"

#include <algorithm>
#include <filesystem>

#include "image/image_io.h"
#include "image/metrics.h"
#include "nets/models.h"
#include "report/comparison.h"

namespace fs = std::filesystem;

namespace bottleneck {

Validator::Validator(std::vector<ValidationImage> images, torch::Device device, int samples)
    : images_(std::move(images)), device_(device), samples_(samples) {
  for (const auto& im : images_) {
    auto noisy = im.noisy.clamp(0, 1);
    noisy_psnr_.push_back(psnr(noisy, im.clean));
    noisy_ssim_.push_back(ssim(noisy, im.clean));
  }
}

DenoiseValidation Validator::noisy() const {
  DenoiseValidation v;
  for (size_t i = 0; i < images_.size(); ++i) v.psnr_noisy += noisy_psnr_[i], v.ssim_noisy += noisy_ssim_[i];
  const double n = static_cast<double>(std::max<size_t>(1, images_.size()));
  v.psnr_noisy /= n, v.ssim_noisy /= n;
  return v;
}

DenoiseValidation Validator::run(AutoencoderImpl& model, const std::string& samples_dir) const {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  DenoiseValidation v;
  for (size_t i = 0; i < images_.size(); ++i) {
    const auto& im = images_[i];
    auto out = model.forward(im.noisy.unsqueeze(0).to(device_)).squeeze(0).clamp(0, 1).to(torch::kCPU);
    const double p = psnr(out, im.clean), s = ssim(out, im.clean);
    v.psnr += p;
    v.ssim += s;
    v.psnr_noisy += noisy_psnr_[i];
    v.ssim_noisy += noisy_ssim_[i];
    if (!samples_dir.empty() && static_cast<int>(i) < samples_) {
      const cv::Mat strip =
          make_comparison({{im.clean, "clean", ""},
                           {im.noisy.clamp(0, 1), "noisy", quality_caption(noisy_psnr_[i], noisy_ssim_[i])},
                           {out, "denoised", quality_caption(p, s)}});
      std::string flat = fs::path(im.name).replace_extension(".png").string();
      std::replace(flat.begin(), flat.end(), '/', '_');
      save_mat(samples_dir + "/" + flat, strip);
    }
  }
  const double n = static_cast<double>(images_.size());
  v.psnr /= n, v.ssim /= n, v.psnr_noisy /= n, v.ssim_noisy /= n;
  if (was_training) model.train();
  return v;
}

}  // namespace bottleneck

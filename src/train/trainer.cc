#include "train/trainer.h"

#include <cmath>
#include <limits>
#include <memory>

#include <torch/torch.h>

#include "data/dataset.h"
#include "data/noise.h"
#include "formats/model_file.h"
#include "nets/models.h"
#include "report/plot.h"
#include "train/autoencoder_checkpoint.h"
#include "train/layout_probe.h"
#include "train/objective.h"
#include "train/run_directory.h"
#include "train/training_loop.h"
#include "train/validator.h"
#include "util/text_format.h"

namespace bottleneck {

double learning_rate(const TrainOptions& o, int64_t it) {
  if (o.schedule == "cosine") {
    const double t = static_cast<double>(it) / static_cast<double>(o.iterations);
    return o.lr_min + 0.5 * (o.lr - o.lr_min) * (1.0 + std::cos(M_PI * t));
  }
  if (o.schedule == "step") return o.lr * std::pow(o.step_gamma, static_cast<double>(it / o.step_size));
  return o.lr;
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Denoising: the autoencoder of options.arch learns to map noisy patches (synthetic noise, or
// real noisy partners) to clean ones under MSE or L1; validation is PSNR/SSIM on fixed images.
class DenoiseObjective final : public TrainingObjective {
 public:
  DenoiseObjective(const TrainOptions& o, const TrainControl& control, const Runtime& runtime, const Logger& log,
                   const RunDirectory& run)
      : options_(o), device_(runtime.device) {
    const int channels = o.arch.in_channels;
    noise_ = o.pairs_dir.empty() ? parse_noise(o.noise) : NoiseSpec{};
    const NoiseSpec val_noise = parse_noise(o.val_noise.empty() ? o.noise : o.val_noise);
    log.info("loading training images from ", o.data_dir,
             o.pairs_dir.empty() ? "" : " (noisy partners from " + o.pairs_dir + ")");
    dataset_ = std::make_unique<PatchDataset>(PatchDataset::from_folder(
        o.data_dir, o.pairs_dir, channels, o.patches, log, o.max_pixels,
        &skipped_training));
    std::vector<ValidationImage> val_images;
    if (!o.val_dir.empty()) {
      val_images = o.val_pairs_dir.empty()
                       ? load_validation_set(o.val_dir, channels, val_noise, kValidationNoiseSeed, log, o.max_pixels,
                                             &skipped_validation)
                       : load_validation_pairs(o.val_dir, o.val_pairs_dir, channels, log, o.max_pixels,
                                               &skipped_validation);
      if (o.val_max_images > 0 && static_cast<int>(val_images.size()) > o.val_max_images)
        val_images.resize(o.val_max_images);
    }
    validator_ = std::make_unique<Validator>(std::move(val_images), runtime.device, o.samples);

    // Before the run seeds torch: the probe's own networks draw from the global generator.
    const c10::ScalarType dtype = o.precision == "bf16" ? torch::kBFloat16 : torch::kFloat;
    // A rank other than 0 measures for itself and keeps nothing: it writes no file of the run
    // (on another machine the run directory may not exist).
    const std::string layout_cache = run.writes() ? run.path("layout.json") : "";
    const TrainingLayout layout = choose_training_layout(control.layout, runtime.device.is_cpu(), o.arch, dtype,
                                                         o.patches.batch, o.patches.patch, runtime.threads, layout_cache);
    if (layout.nchw_patches_per_s > 0)
      log.info("layout: ", layout.channels_last ? "channels-last" : "NCHW", " (", layout.how, ": NCHW ",
               fixed(layout.nchw_patches_per_s, 1), ", channels-last ", fixed(layout.channels_last_patches_per_s, 1),
               " patches/s)");
    channels_last_ = layout.channels_last;

    torch::manual_seed(o.seed);
    model_ = make_model(o.arch);
    if (!control.resume && !o.init.empty()) {
      copy_weights(o.init, o.arch, *model_);
      log.info("starting from the weights of ", o.init);
    }
    model_->to(runtime.device);
    model_->set_compute_dtype(dtype);
  }

  torch::nn::Module& module() override { return *model_; }
  std::string describe() const override {
    return name_of(options_.arch.kind) + std::string(" (") + std::to_string(parameter_count(*model_)) + " parameters, " +
           fixed(2 * model_->macs_per_pixel() / 1e3, 1) + " kFLOP/pixel) on " + std::to_string(dataset_->size()) +
           " images";
  }
  std::string progress_label() const override { return "train"; }
  double training_pixels() const override { return static_cast<double>(dataset_->pixel_count()); }
  // Patches and noise come from (seed, step): a resumed run draws exactly the batches the
  // uninterrupted run would have drawn at the same steps.
  TrainBatch make_batch(int64_t index) const override {
    return dataset_->batch(options_.seed, index, noise_, data_shard());
  }

  torch::Tensor loss(const TrainBatch& batch, int64_t) override {
    auto clean = batch.clean.to(device_);
    auto noisy = batch.noisy.to(device_);
    if (channels_last_) {
      clean = to_channels_last(clean);
      noisy = to_channels_last(noisy);
    }
    const auto output = model_->forward(noisy);
    return options_.loss == "l1" ? torch::l1_loss(output, clean) : torch::mse_loss(output, clean);
  }

  std::vector<std::string> validation_columns() const override {
    return {"val_psnr_noisy", "val_ssim_noisy", "val_psnr", "val_ssim"};
  }
  bool can_validate() const override { return !validator_->empty(); }
  bool lower_is_better() const override { return false; }
  ValidationOutcome validate(const RunDirectory& run, int64_t) override {
    const DenoiseValidation v = validator_->run(*model_, run.writes() ? run.path("samples") : "");
    last_val_ = v.psnr;
    ValidationOutcome out;
    out.figures = {v.psnr_noisy, v.ssim_noisy, v.psnr, v.ssim};
    out.figure = v.psnr;
    out.summary = "PSNR " + fixed(v.psnr, 2) + " dB (noisy " + fixed(v.psnr_noisy, 2) + "), SSIM " + fixed(v.ssim, 4);
    return out;
  }
  std::string figure_text(double figure) const override { return fixed(figure, 2); }
  std::string progress_suffix() const override {
    return std::isfinite(last_val_) ? " | val " + fixed(last_val_, 2) + " dB" : "";
  }

  void save_checkpoint(const std::string& path, const torch::optim::Optimizer* optimizer,
                       const LoopState& state) const override {
    const std::string noise = options_.pairs_dir.empty() ? to_string(noise_) : "pairs:" + options_.pairs_dir;
    save_autoencoder_checkpoint(path, *model_, optimizer, state, {options_.arch, noise, last_val_});
  }
  LoopState load_checkpoint(const std::string& path, torch::optim::Optimizer* optimizer) override {
    return load_autoencoder_checkpoint(path, *model_, optimizer, last_val_);
  }
  // After loading: Module::load replaces the tensors with the stored ones (any layout).
  void prepare_for_training() override {
    if (channels_last_) use_channels_last(*model_);
  }

  void write_curves(const std::string& path, const MetricsLog& metrics) const override {
    std::vector<double> li, l, vi, vp, ni, vn;
    metrics.series("loss", &li, &l);
    metrics.series("val_psnr", &vi, &vp);
    metrics.series("val_psnr_noisy", &ni, &vn);
    write_training_curves(path, li, l, vi, vp, vn);
  }

  double last_val() const { return last_val_; }
  double noisy_val_psnr() const { return validator_->empty() ? kNaN : validator_->noisy().psnr_noisy; }

  std::vector<std::string> skipped_training, skipped_validation;

 private:
  const TrainOptions options_;
  torch::Device device_;
  NoiseSpec noise_;
  std::unique_ptr<PatchDataset> dataset_;
  std::unique_ptr<Validator> validator_;
  bool channels_last_ = false;
  Autoencoder model_{nullptr};
  double last_val_ = kNaN;
};

}  // namespace

TrainResult train(const TrainOptions& options, const TrainControl& control, const Runtime& runtime,
                  const Logger& log) {
  std::unique_ptr<TrainingObjective> objective;
  const LoopResult loop = run_training(
      options, control, runtime, log,
      [&](const RunDirectory& run) { return std::make_unique<DenoiseObjective>(options, control, runtime, log, run); },
      &objective);
  auto& denoise = static_cast<DenoiseObjective&>(*objective);
  TrainResult result;
  result.iteration = loop.iteration;
  result.finished = loop.finished;
  result.best_val_psnr = loop.best;
  result.last_val_psnr = denoise.last_val();
  result.last_val_psnr_noisy = std::isfinite(denoise.last_val()) ? denoise.noisy_val_psnr() : kNaN;
  result.seconds = loop.seconds;
  result.patches_per_second = loop.patches_per_second;
  result.skipped_training = std::move(denoise.skipped_training);
  result.skipped_validation = std::move(denoise.skipped_validation);
  return result;
}

}  // namespace bottleneck

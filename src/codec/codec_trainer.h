#pragma once

// Rate-distortion training of the learned codec (`bottleneck train --task compress`):
// loss = mean over the batch of lambda_r * 255^2 * MSE + bpp, each patch coded at its own rate
// r (rates cycle over the batch, a pure function of the step), uniform noise as the quantisation
// proxy, Adam with the run's learning-rate schedule. Validation codes the first images of --val
// at every trained rate with rounding: estimated bpp, real bpp (the rANS stream of the frozen
// tables plus the .bnc container's fixed bytes) and PSNR.
//
// Run directory: config.json, metrics.csv, curves.png, last.ckpt (resumable), best.ckpt (lowest
// validation RD figure). Batches and noise are pure functions of (seed, step), so a stopped and
// resumed run ends with the same weights as an uninterrupted one (on the CPU, same threads).

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "codec/codec_model.h"
#include "util/log.h"
#include "runtime/runtime.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace bottleneck {

// One rate point of a validation, averaged over the images (PSNR: mean of per-image PSNR).
struct RateValidation {
  double lambda = 0;
  double bpp = 0;       // estimated from the likelihoods
  double real_bpp = 0;  // rANS payload + container bytes (52 + 16 per stream) x 8 / pixels
  double psnr = 0;      // dB, RGB, reconstruction clamped to [0, 1] and rounded to 8 bits
};

struct CodecValidation {
  std::vector<RateValidation> rates;
  // The run's rate-distortion figure (lower is better; best.ckpt minimises it): the mean over
  // rates of lambda * 255^2 * MSE + estimated bpp on the validation images, i.e. the training
  // objective on held-out images.
  double rd = 0;
  double mean_psnr = 0;  // mean of the rates' PSNR
};

// Codes `images` (C x H x W in [0, 1], any size) at every trained rate. With real_bits, freezes
// the prior's tables and entropy-codes the symbols (otherwise real_bpp is NaN). Updates the
// prior's medians; leaves the model's train/eval mode as it was.
CodecValidation validate_codec(CodecModelImpl& model, const std::vector<torch::Tensor>& images,
                               const std::vector<double>& lambdas, bool real_bits);

struct CodecTrainResult {
  int64_t iteration = 0;          // steps completed in the run (all invocations)
  bool finished = false;          // reached options.iterations
  double best_val_rd = 0;         // NaN without validation
  CodecValidation last;           // the latest validation (empty rates without one)
  double patches_per_second = 0;  // this invocation
  double seconds = 0;
  std::vector<std::string> skipped_training, skipped_validation;
};

// Trains (or resumes, control.resume) the codec run described by `options` (task "compress").
// Throws UsageError for bad options, Error for bad data or a non-finite loss (the last good
// checkpoint is kept).
CodecTrainResult train_codec(const TrainOptions& options, const TrainControl& control, const Runtime& runtime,
                             const Logger& log);

// Codec checkpoints (their own format: checkpoint.h's stores an Autoencoder). A torch archive
// with "bottleneck_info" (JSON: format "bottleneck-codec-checkpoint", format_version, iteration,
// codec spec, lambdas, the run's config, best RD figure, the metrics window), "model" and
// optionally "optimizer". Written atomically.
inline constexpr const char* kCodecCheckpointFormat = "bottleneck-codec-checkpoint";
inline constexpr int64_t kCodecCheckpointVersion = 1;

struct CodecCheckpointInfo {
  CodecSpec spec;
  std::vector<double> lambdas;
  std::string config_json;
  int64_t iteration = 0;
  double best_val_rd = 0;        // NaN when never validated
  std::vector<double> window;    // the metrics window's running sums (resume logs the same rows)
  std::string project_version;
};

void save_codec_checkpoint(const std::string& path, const CodecModelImpl& model,
                           const torch::optim::Optimizer* optimizer, const CodecCheckpointInfo& info);
CodecCheckpointInfo read_codec_checkpoint_info(const std::string& path);
// Loads weights (and the optimizer state, if given) into a model built from the info's spec.
void load_codec_checkpoint_state(const std::string& path, CodecModelImpl& model, torch::optim::Optimizer* optimizer);
// `train --task compress --init`: the weights of a codec checkpoint of the same network (either
// prior kind) into a new run's model, whose rates are at `lambdas`; Error(kInvalidData) naming
// the checkpoint otherwise. A checkpoint of another rate ladder (other lambdas, other count)
// gives its gains mapped onto the new lambdas: per channel, log gain piecewise linear in log
// lambda through the trained rates, continued beyond them along the end segments.
void init_codec_from_checkpoint(const std::string& path, CodecModelImpl& model, const std::vector<double>& lambdas);

}  // namespace bottleneck

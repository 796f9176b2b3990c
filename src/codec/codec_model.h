#pragma once

// The learned codec's network: an analysis transform g_a (image -> latents at 1/16 of the size),
// per-rate gains on the latents, quantisation, the factorized prior (entropy_bottleneck.h) that
// gives their rate, and a synthesis transform g_s (latents -> image). CompressAI's model contract:
// forward() returns the reconstruction and the likelihoods; inputs of any size are padded to the
// stride multiple and the output cropped back.
//
// One model serves every rate (Cui et al. 2021, "Asymmetric gained deep image compression with
// continuous rate adaptation"): rate r multiplies the latents by a learned gain vector gain[r]
// before rounding and by inverse_gain[r] before synthesis, so a larger gain means finer
// quantisation and more bits. Between trained rates the gains are interpolated geometrically.
// The prior (spec.prior "step", the default) is the density of the latents before the gain,
// each rate coding them with its own quantisation step 1/gain (entropy_bottleneck.h): one
// density fits every rate. The first models (prior "gained") had one density of the gained
// latents for all rates; it measured as a mixture, squeezing the trained rates together (0.47 to
// 1.13 bpp on Kodak for lambdas 0.0018 to 0.0932, models/training/codec/README). They still load.
//
// Parameter names (they go into checkpoints; keep them stable): g_a.{0,2,4,6}.{weight,bias},
// g_s.{0,2,4,6}.{weight,bias}, with GDN also g_a.{1,3,5}.{beta,gamma} and g_s.{1,3,5}.{beta,gamma};
// gain, inverse_gain (R x M); prior.{matrixI,biasI,factorI} and the buffer prior.medians.

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "codec/entropy_bottleneck.h"

namespace bottleneck {

// What defines the network; stored with every checkpoint.
struct CodecSpec {
  int channels = 3;                // image channels, 1 or 3
  int n = 64;                      // channels of the hidden layers of g_a and g_s, >= 1
  int m = 96;                      // latent channels, >= 1
  std::string activation = "relu"; // "relu", or "gdn" (GDN in g_a, inverse GDN in g_s)
  int rates = 1;                   // trained rate points (gain vectors), >= 1
  std::string prior = "step";      // "step": the prior is of y, gain[r] sets the step; "gained":
                                   // of y * gain[r] for every r (format 1 models; the JSON of
                                   // their specs has no "prior", which is how they are told)
};

// Throws UsageError naming the first bad field.
void validate(const CodecSpec& spec);
std::string to_json(const CodecSpec& spec);
CodecSpec codec_spec_from_json(const std::string& json_text);

// Generalized divisive normalisation (Balle et al. 2016): x / sqrt(beta + gamma * x^2) over
// channels, or x * sqrt(...) for the inverse. beta and gamma are kept positive by a bound on the
// stored parameters (squared, with a pedestal so their gradient does not vanish at zero).
class GdnImpl : public torch::nn::Module {
 public:
  GdnImpl(int64_t channels, bool inverse);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  bool inverse_;
  torch::Tensor beta_, gamma_;
};
TORCH_MODULE(Gdn);

struct CodecOutput {
  torch::Tensor x_hat;        // B x C x H x W, the reconstruction (not clamped)
  torch::Tensor likelihoods;  // B x M x h x w, h = ceil(H / 16), w = ceil(W / 16)
  torch::Tensor y_hat;        // B x M x h x w, the gained latents as quantised (or noised)
};

class CodecModelImpl : public torch::nn::Module {
 public:
  // The total downsampling of g_a: inputs are padded to a multiple of it.
  static constexpr int64_t kStride = 16;

  // lambdas: one per rate (spec.rates of them), used only to initialise the gains in proportion
  // to sqrt(lambda) (the quantisation step that minimises lambda * MSE + rate scales roughly as
  // lambda^-1/2); empty = all gains 1.
  explicit CodecModelImpl(CodecSpec spec, const std::vector<double>& lambdas = {});

  // Gains for each sample's rate index (rates: B, int64 in [0, rates)): B x M x 1 x 1 each.
  torch::Tensor gains(const torch::Tensor& rates) const;
  torch::Tensor inverse_gains(const torch::Tensor& rates) const;
  // Gains at a continuous rate position r in [0, rates - 1] (geometric interpolation between
  // the neighbouring trained rates): 1 x M x 1 x 1 each.
  torch::Tensor gains_at(double r) const;
  torch::Tensor inverse_gains_at(double r) const;
  // What the prior takes as its `gain` for latents gained by `gain`: that gain ("step" prior),
  // or undefined ("gained": its density is already of the gained values).
  torch::Tensor prior_gain(const torch::Tensor& gain) const { return spec_.prior == "step" ? gain : torch::Tensor(); }

  // The rate positions a frozen model has tables for. A "step" prior needs a table set per
  // quantisation step, so a frozen model codes at kFrozenSteps evenly spaced positions from the
  // lowest trained rate to the highest (the half steps of quality 1..100, compressor.h: about
  // 1% in file size between neighbours); "gained" needs one set for every rate, and codes at any
  // position.
  static constexpr int kFrozenSteps = 199;
  int frozen_steps() const { return spec_.prior == "step" && spec_.rates > 1 ? kFrozenSteps : 1; }
  // The rate position of step i (0 <= i < frozen_steps()), in 0 .. rates - 1.
  double step_position(int step) const {
    return frozen_steps() == 1 ? 0.0 : static_cast<double>(step) * (spec_.rates - 1) / (kFrozenSteps - 1);
  }
  // The step nearest rate position r (0 .. rates - 1): the inverse of step_position.
  int nearest_step(double r) const {
    return frozen_steps() == 1 ? 0 : static_cast<int>(std::lround(r / (spec_.rates - 1) * (kFrozenSteps - 1)));
  }

  // x: B x C x H x W in [0, 1], any H, W >= 1. gain / inverse_gain: B (or 1) x M x 1 x 1.
  // With `noise` the latents get U(-1/2, 1/2) noise drawn from it (training); without, they are
  // rounded around the prior's medians (test: call prior->update_medians() after training).
  CodecOutput forward(const torch::Tensor& x, const torch::Tensor& gain, const torch::Tensor& inverse_gain,
                      std::optional<at::Generator> noise = std::nullopt);

  // The transforms alone, on inputs whose size is a multiple of kStride (analysis) or latents.
  torch::Tensor analysis(const torch::Tensor& x) { return g_a_->forward(x); }
  torch::Tensor synthesis(const torch::Tensor& y) { return g_s_->forward(y); }

  // x padded (replicated edges) to multiples of kStride.
  static torch::Tensor pad_to_stride(const torch::Tensor& x);

  const CodecSpec& spec() const { return spec_; }
  // Multiply-accumulates per image pixel of g_a + g_s.
  double macs_per_pixel() const;

  EntropyBottleneck prior{nullptr};

 private:
  CodecSpec spec_;
  torch::nn::Sequential g_a_{nullptr}, g_s_{nullptr};
  torch::Tensor gain_, inverse_gain_;
};
TORCH_MODULE(CodecModel);

// Estimated bits per pixel of each sample: -sum(log2 likelihoods) / pixels (B values).
torch::Tensor bits_per_pixel(const torch::Tensor& likelihoods, int64_t pixels);

}  // namespace bottleneck

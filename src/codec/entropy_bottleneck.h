#pragma once

// The factorized prior of the learned codec (Balle et al. 2018, "Variational image compression
// with a scale hyperprior", appendix 6.1; the same model as CompressAI's EntropyBottleneck): each
// latent channel c has its own learned density, given by a small monotone network f_c whose
// sigmoid is the channel's cumulative distribution. The likelihood of a latent value y is the
// mass of the unit interval around it, sigmoid(f(y + 1/2)) - sigmoid(f(y - 1/2)), so the rate of
// quantised latents is -log2 of it, and with uniform noise instead of rounding (training) the same
// expression is the density of y + U(-1/2, 1/2) convolved with the prior.
//
// Test-time symbols are round(y - median_c) (integers around each channel's median, so the table
// is centred); the medians, and the ranges the frozen tables cover, are found by bisection on the
// learned CDF after (or during) training rather than by an auxiliary loss: under a second of work,
// and nothing to optimise.
//
// Quantisation steps: every operation also takes an optional per-channel `gain`, the reciprocal
// of a quantisation step (Choi et al. 2019, "Variable rate deep image compression with a
// conditional autoencoder": one density, bins of any width). The coded values are then v = y * gain,
// rounded to integers around median * gain, and the likelihood of v is the prior's mass over
// [(v - 1/2) / gain, (v + 1/2) / gain]: the density stays that of y whatever the step, so a
// variable-rate codec needs no density per rate (one density for the gained latents of every
// rate is a mixture, and pays its cross-entropy at each). Without a gain the step is 1 and v = y.

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "codec/rans.h"

namespace bottleneck {

// Likelihoods below this are raised to it (the gradient still passes, so a value in a region the
// prior thinks impossible is pulled in rather than stuck): -log2(1e-9) ~ 30 bits caps the cost a
// single value can show in the loss.
inline constexpr double kLikelihoodFloor = 1e-9;

class EntropyBottleneckImpl : public torch::nn::Module {
 public:
  // channels: latent channels, >= 1. filters: hidden widths of each channel's CDF network
  // (Balle: 3,3,3,3). init_scale: the initial prior's spread, in latent units (Balle: 10).
  explicit EntropyBottleneckImpl(int64_t channels, std::vector<int64_t> filters = {3, 3, 3, 3},
                                 double init_scale = 10.0);

  // The CDF networks' logits f_c(x) for x: C x 1 x K (one row of points per channel) -> C x 1 x K.
  // Monotone increasing in x for every channel (softplus weights, tanh gates bounded below -1).
  torch::Tensor logits_cumulative(const torch::Tensor& x) const;

  // Likelihoods of v (B x C x H x W, C = channels()) under the prior: the mass of
  // [(v-1/2)/gain, (v+1/2)/gain] per element, floored at kLikelihoodFloor. gain: B (or 1) x C x
  // 1 x 1, positive, or undefined for 1. Differentiable in v, gain and the prior's parameters.
  torch::Tensor likelihood(const torch::Tensor& v, const torch::Tensor& gain = {}) const;

  // The training proxy: y + noise, noise ~ U(-1/2, 1/2) given by the caller (a pure function of
  // the step keeps resume bit-exact).
  static torch::Tensor add_noise(const torch::Tensor& y, const torch::Tensor& noise) { return y + noise; }

  // The test-time quantisation: round(v - median * gain) + median * gain per channel (no
  // gradient to v). gain as in likelihood().
  torch::Tensor quantize(const torch::Tensor& v, const torch::Tensor& gain = {}) const;
  // The integer symbols round(v - median * gain) per element (B x C x H x W, int32); the inverse
  // is dequantize.
  torch::Tensor symbols(const torch::Tensor& v, const torch::Tensor& gain = {}) const;
  torch::Tensor dequantize(const torch::Tensor& symbols, const torch::Tensor& gain = {}) const;

  // Per channel, the x where sigmoid(f_c(x)) = p (C values, double), found by bisection,
  // without gradient. p in (0, 1).
  torch::Tensor quantile(double p) const;
  // The same for K probabilities at once (p: K values in (0, 1)): C x K, double.
  torch::Tensor quantiles(const torch::Tensor& p) const;
  // Recomputes the `medians` buffer (quantile 1/2) from the current CDF networks: call after
  // training steps and before quantize/symbols (validation, freezing).
  void update_medians();
  const torch::Tensor& medians() const { return medians_; }

  int64_t channels() const { return channels_; }

 private:
  int64_t channels_;
  std::vector<int64_t> filters_;               // 1, hidden..., 1
  std::vector<torch::Tensor> matrices_, biases_, factors_;
  torch::Tensor medians_;                      // C, float; a buffer "medians"
};
TORCH_MODULE(EntropyBottleneck);

// The integer tables a frozen model codes with: one per channel and quantisation step (gain),
// for the symbols round((y - median_c) * gain), each covering the channel's values from its
// tail_mass/2 to its 1 - tail_mass/2 quantile (at most kMaxCdfSymbols - 1 values; anything
// outside is escaped).
struct FrozenPrior {
  std::vector<CdfTable> tables;  // steps x channels, step-major
  std::vector<float> medians;    // per channel: the value symbol 0 stands for, before rounding
  size_t steps() const { return medians.empty() ? 0 : tables.size() / medians.size(); }
  const CdfTable& table(size_t step, size_t channel) const { return tables[step * medians.size() + channel]; }
};

// Builds the tables from the prior's CDF with codec/cdf.h's make_cdf_table (masses computed in
// double precision from the float network). Updates the medians first. tail_mass in (0, 1):
// the probability left to the escape on both sides together (CompressAI: 1e-9). gains: S x C,
// positive, one row per step to freeze; undefined: one step of 1.
FrozenPrior freeze_prior(EntropyBottleneckImpl& prior, double tail_mass = 1e-9, const torch::Tensor& gains = {});

}  // namespace bottleneck

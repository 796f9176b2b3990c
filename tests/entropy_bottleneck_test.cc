// The factorized prior: a proper distribution over the integers, the training proxy against
// rounding, medians and quantiles by bisection, frozen tables that code its symbols exactly.
#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "codec/cdf.h"
#include "codec/entropy_bottleneck.h"
#include "codec/rans.h"

using namespace bottleneck;

namespace {

// A prior whose channels are shifted and spread differently, as after training.
EntropyBottleneck shaped_prior(int64_t channels) {
  torch::manual_seed(7);
  EntropyBottleneck prior(channels);
  torch::NoGradGuard no_grad;
  for (auto& p : prior->named_parameters())
    if (p.key().rfind("bias", 0) == 0) p.value().add_(torch::randn_like(p.value()) * 2);
  return prior;
}

// One row per channel of the integers lo..hi, shifted by `shift`: 1 x C x 1 x K.
torch::Tensor integer_grid(int64_t channels, int64_t lo, int64_t hi, double shift = 0) {
  return (torch::arange(lo, hi + 1, torch::kFloat) + shift).view({1, 1, 1, -1}).expand({1, channels, 1, hi - lo + 1}).contiguous();
}

// side x side latents per channel drawn from the prior itself (inverse CDF of uniform draws), so
// estimates and real costs are compared where the model is right about its data.
torch::Tensor sample_prior(EntropyBottleneckImpl& prior, int64_t side, uint64_t seed) {
  torch::manual_seed(seed);
  const torch::Tensor u = torch::rand({side * side}, torch::kDouble) * 0.998 + 0.001;
  return prior.quantiles(u).to(torch::kFloat).view({1, prior.channels(), side, side});
}

}  // namespace

TEST(EntropyBottleneck, LikelihoodsSumToOneOverTheIntegersPerChannel) {
  auto prior = shaped_prior(5);
  torch::NoGradGuard no_grad;
  for (double shift : {0.0, 0.3}) {
    const torch::Tensor sums = prior->likelihood(integer_grid(5, -400, 400, shift)).sum({0, 2, 3});
    for (int64_t c = 0; c < 5; ++c) EXPECT_NEAR(sums[c].item<double>(), 1.0, 1e-4) << "channel " << c << " shift " << shift;
  }
}

TEST(EntropyBottleneck, LikelihoodIsFlooredAndPassesGradient) {
  auto prior = shaped_prior(2);
  torch::Tensor y = torch::full({1, 2, 1, 1}, 1e6, torch::requires_grad());
  const torch::Tensor lik = prior->likelihood(y);
  EXPECT_NEAR(lik.min().item<double>(), kLikelihoodFloor, 1e-15);
  (-torch::log2(lik)).sum().backward();
  ASSERT_TRUE(y.grad().defined());
}

TEST(EntropyBottleneck, MediansAndQuantilesSolveTheCdf) {
  auto prior = shaped_prior(4);
  prior->update_medians();
  torch::NoGradGuard no_grad;
  const torch::Tensor at_median = torch::sigmoid(prior->logits_cumulative(prior->medians().view({4, 1, 1}))).view({4});
  for (int64_t c = 0; c < 4; ++c) EXPECT_NEAR(at_median[c].item<double>(), 0.5, 1e-5);
  const torch::Tensor q = prior->quantile(1e-3), p = prior->quantile(1 - 1e-3);
  EXPECT_TRUE((q < prior->medians().to(torch::kDouble)).all().item<bool>());
  EXPECT_TRUE((p > prior->medians().to(torch::kDouble)).all().item<bool>());
  const torch::Tensor at_q = torch::sigmoid(prior->logits_cumulative(q.view({4, 1, 1}))).view({4});
  for (int64_t c = 0; c < 4; ++c) EXPECT_NEAR(at_q[c].item<double>(), 1e-3, 1e-7);
}

TEST(EntropyBottleneck, NoiseProxyRateMatchesRoundingRate) {
  auto prior = shaped_prior(3);
  prior->update_medians();
  torch::NoGradGuard no_grad;
  const torch::Tensor y = sample_prior(*prior, 32, 1);
  const torch::Tensor rounded = prior->quantize(y);
  EXPECT_LE((rounded - y).abs().max().item<double>(), 0.5 + 1e-4);
  // Rounded values are integers around each channel's median.
  const torch::Tensor offset = rounded - prior->medians().view({1, 3, 1, 1});
  EXPECT_LE((offset - offset.round()).abs().max().item<double>(), 1e-4);
  EXPECT_TRUE(torch::equal(prior->dequantize(prior->symbols(y)), rounded));
  torch::manual_seed(3);
  const torch::Tensor noised = EntropyBottleneckImpl::add_noise(y, torch::rand(y.sizes()) - 0.5);
  EXPECT_LE((noised - y).abs().max().item<double>(), 0.5);
  const double bits_noise = -torch::log2(prior->likelihood(noised)).mean().item<double>();
  const double bits_round = -torch::log2(prior->likelihood(rounded)).mean().item<double>();
  // For a prior wide against the unit step, the noisy proxy's expected rate equals the rate of
  // rounding to within a few percent.
  EXPECT_NEAR(bits_noise, bits_round, 0.05 * bits_round);
}

TEST(EntropyBottleneck, FrozenTablesCostWhatTheModelEstimatesAndRoundTripThroughRans) {
  auto prior = shaped_prior(4);
  const FrozenPrior frozen = freeze_prior(*prior);
  ASSERT_EQ(frozen.tables.size(), 4u);
  for (const auto& t : frozen.tables) EXPECT_EQ(cdf_table_problem(t), "");
  torch::Tensor y = sample_prior(*prior, 24, 2);
  y[0][1][0][0] = 1e4;  // far outside the table: escaped
  torch::NoGradGuard no_grad;
  const torch::Tensor symbols = prior->symbols(y).contiguous();
  const int32_t* s = symbols.data_ptr<int32_t>();
  const int64_t plane = 24 * 24;
  RansEncoder enc;
  for (int64_t c = 0; c < 4; ++c)
    for (int64_t k = 0; k < plane; ++k) enc.put(s[c * plane + k], frozen.tables[c]);
  const std::vector<uint8_t> bytes = enc.finish();
  RansDecoder dec(bytes.data(), bytes.size());
  for (int64_t c = 0; c < 4; ++c)
    for (int64_t k = 0; k < plane; ++k) ASSERT_EQ(dec.get(frozen.tables[c]), s[c * plane + k]) << c << " " << k;
  dec.finish_check();
  const double estimate = -torch::log2(prior->likelihood(prior->quantize(y))).sum().item<double>();
  double table_bits = 0;  // escaped values counted as the escape symbol alone
  for (int64_t c = 0; c < 4; ++c)
    for (int64_t k = 0; k < plane; ++k) {
      const auto& t = frozen.tables[c];
      const int64_t i = std::clamp<int64_t>(s[c * plane + k] - t.offset, 0, t.num_symbols() - 1);
      table_bits += -std::log2((t.cdf[i + 1] - t.cdf[i]) / 65536.0);
    }
  // The tables cost what the model estimates to ~1% (the one escaped value aside), and the
  // stream what the tables cost.
  EXPECT_NEAR(table_bits, estimate, 0.01 * estimate + 30);
  EXPECT_NEAR(8.0 * static_cast<double>(bytes.size()), table_bits, 64 + 50);
  for (int64_t c = 0; c < 4; ++c) EXPECT_FLOAT_EQ(frozen.medians[c], prior->medians()[c].item<float>());
}

TEST(EntropyBottleneck, IntervalAroundASymmetricMedianKeepsItsMass) {
  // Zero biases and gates: f is odd, so f(-1/2) + f(1/2) is exactly 0 (a sign() of it would
  // zero the mass of the most frequent symbol).
  EntropyBottleneck prior(1);
  torch::NoGradGuard no_grad;
  for (auto& p : prior->named_parameters())
    if (p.key().rfind("bias", 0) == 0) p.value().zero_();
  const double f_half = prior->logits_cumulative(torch::full({1, 1, 1}, 0.5)).item<double>();
  const double expected = 1 / (1 + std::exp(-f_half)) - 1 / (1 + std::exp(f_half));
  EXPECT_NEAR(prior->likelihood(torch::zeros({1, 1, 1, 1})).item<double>(), expected, 1e-6);
  EXPECT_GT(expected, 0.01);
}

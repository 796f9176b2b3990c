#include "codec/entropy_bottleneck.h"

#include <algorithm>
#include <cmath>

#include "codec/cdf.h"
#include "util/error.h"

namespace bottleneck {

EntropyBottleneckImpl::EntropyBottleneckImpl(int64_t channels, std::vector<int64_t> filters, double init_scale)
    : channels_(channels) {
  if (channels < 1) throw Error("entropy bottleneck: channels must be >= 1");
  filters_.push_back(1);
  for (int64_t f : filters) filters_.push_back(f);
  filters_.push_back(1);
  const size_t layers = filters_.size() - 1;
  // Balle's initialisation: the composed network starts as a wide logistic (scale init_scale),
  // every layer contributing an equal share of the spread.
  const double scale = std::pow(init_scale, 1.0 / static_cast<double>(layers));
  for (size_t i = 0; i < layers; ++i) {
    const double init = std::log(std::expm1(1.0 / scale / static_cast<double>(filters_[i + 1])));
    const std::string n = std::to_string(i);
    matrices_.push_back(register_parameter("matrix" + n, torch::full({channels, filters_[i + 1], filters_[i]}, init)));
    biases_.push_back(register_parameter("bias" + n, torch::rand({channels, filters_[i + 1], 1}) - 0.5));
    if (i + 1 < layers) factors_.push_back(register_parameter("factor" + n, torch::zeros({channels, filters_[i + 1], 1})));
  }
  medians_ = register_buffer("medians", torch::zeros({channels}));
}

torch::Tensor EntropyBottleneckImpl::logits_cumulative(const torch::Tensor& x) const {
  torch::Tensor logits = x;
  for (size_t i = 0; i < matrices_.size(); ++i) {
    logits = torch::matmul(torch::softplus(matrices_[i]).to(x.scalar_type()), logits) + biases_[i].to(x.scalar_type());
    // tanh(factor) > -1 keeps each layer's map x + a tanh(x) increasing.
    if (i < factors_.size()) logits = logits + torch::tanh(factors_[i]).to(x.scalar_type()) * torch::tanh(logits);
  }
  return logits;
}

namespace {

// sigmoid(upper) - sigmoid(lower), computed on the side of the sigmoid where it is not close to
// 1 (where float would lose the difference of two numbers near 1). The side is chosen by
// lower + upper > 0, never by sign(lower + upper): that is 0 when the sum is exactly 0, which
// happens for the interval around a median whose logits are symmetric (measured: the median
// symbol of one channel in four got the floor's 30 bits instead of its 5).
torch::Tensor interval_mass(const torch::Tensor& lower, const torch::Tensor& upper) {
  const torch::Tensor sign = torch::where(lower + upper > 0, -1.0, 1.0).to(lower.scalar_type()).detach();
  return torch::abs(torch::sigmoid(sign * upper) - torch::sigmoid(sign * lower));
}

}  // namespace

torch::Tensor EntropyBottleneckImpl::likelihood(const torch::Tensor& v, const torch::Tensor& gain) const {
  TORCH_CHECK(v.dim() == 4 && v.size(1) == channels_, "entropy bottleneck: expected B x ", channels_, " x H x W");
  const auto shape = v.permute({1, 0, 2, 3}).sizes().vec();
  torch::Tensor lower, upper;
  if (gain.defined()) {
    // In the density's units: the bin of v is [v - 1/2, v + 1/2] / gain.
    const torch::Tensor step = gain.reciprocal().expand_as(v).permute({1, 0, 2, 3}).reshape({channels_, 1, -1});
    const torch::Tensor y = v.permute({1, 0, 2, 3}).reshape({channels_, 1, -1}) * step;
    lower = y - 0.5 * step, upper = y + 0.5 * step;
  } else {
    const torch::Tensor y = v.permute({1, 0, 2, 3}).reshape({channels_, 1, -1});
    lower = y - 0.5, upper = y + 0.5;
  }
  torch::Tensor mass = interval_mass(logits_cumulative(lower), logits_cumulative(upper));
  // The floor with a passing gradient (CompressAI's LowerBound lets it through where it pushes
  // the value up, which for a rate term -log(p) is always).
  mass = mass + (mass.clamp_min(kLikelihoodFloor) - mass).detach();
  return mass.reshape(shape).permute({1, 0, 2, 3});
}

namespace {
// The value symbol 0 stands for: median * gain per channel (1 x C x 1 x 1 or B x C x 1 x 1).
torch::Tensor centre(const torch::Tensor& medians, const torch::Tensor& gain) {
  const torch::Tensor m = medians.view({1, -1, 1, 1});
  return gain.defined() ? m * gain.detach() : m;
}
}  // namespace

torch::Tensor EntropyBottleneckImpl::quantize(const torch::Tensor& v, const torch::Tensor& gain) const {
  const torch::Tensor m = centre(medians_, gain);
  return (torch::round(v - m) + m).detach();
}

torch::Tensor EntropyBottleneckImpl::symbols(const torch::Tensor& v, const torch::Tensor& gain) const {
  return torch::round(v.detach() - centre(medians_, gain)).to(torch::kInt);
}

torch::Tensor EntropyBottleneckImpl::dequantize(const torch::Tensor& s, const torch::Tensor& gain) const {
  return s.to(torch::kFloat) + centre(medians_, gain);
}

torch::Tensor EntropyBottleneckImpl::quantile(double p) const {
  if (!(p > 0 && p < 1)) throw Error("entropy bottleneck: quantile of " + std::to_string(p));
  return quantiles(torch::full({1}, p, torch::kDouble)).view({channels_});
}

torch::Tensor EntropyBottleneckImpl::quantiles(const torch::Tensor& p) const {
  torch::NoGradGuard no_grad;
  const int64_t k = p.numel();
  const torch::Tensor pd = p.to(torch::kDouble).view({1, 1, k});
  if (!(pd > 0).all().item<bool>() || !(pd < 1).all().item<bool>())
    throw Error("entropy bottleneck: quantiles need probabilities in (0, 1)");
  const torch::Tensor target = torch::log(pd / (1 - pd)).expand({channels_, 1, k});
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  torch::Tensor lo = torch::full({channels_, 1, k}, -1.0, opts), hi = torch::full({channels_, 1, k}, 1.0, opts);
  // Widen the bracket until f(lo) <= target <= f(hi): 2^40 is far beyond any latent's range.
  for (int i = 0; i < 40; ++i) {
    lo = torch::where(logits_cumulative(lo) > target, lo * 2, lo);
    hi = torch::where(logits_cumulative(hi) < target, hi * 2, hi);
  }
  for (int i = 0; i < 64; ++i) {
    const torch::Tensor mid = (lo + hi) / 2;
    const torch::Tensor below = logits_cumulative(mid) < target;
    lo = torch::where(below, mid, lo);
    hi = torch::where(below, hi, mid);
  }
  return ((lo + hi) / 2).view({channels_, k});
}

void EntropyBottleneckImpl::update_medians() {
  torch::NoGradGuard no_grad;
  medians_.copy_(quantile(0.5).to(medians_.scalar_type()));
}

FrozenPrior freeze_prior(EntropyBottleneckImpl& prior, double tail_mass, const torch::Tensor& gains) {
  if (!(tail_mass > 0 && tail_mass < 1)) throw Error("freeze_prior: tail mass must be in (0, 1)");
  torch::NoGradGuard no_grad;
  prior.update_medians();
  const int64_t c = prior.channels();
  const torch::Tensor g = gains.defined() ? gains.to(torch::kDouble).abs() : torch::ones({1, c}, torch::kDouble);
  if (g.dim() != 2 || g.size(1) != c || !(g > 0).all().item<bool>())
    throw Error("freeze_prior: gains must be steps x " + std::to_string(c) + ", positive");
  const torch::Tensor med = prior.medians().to(torch::kDouble);
  const torch::Tensor q_lo = prior.quantile(tail_mass / 2) - med, q_hi = prior.quantile(1 - tail_mass / 2) - med;
  // At most kMaxCdfSymbols - 1 values (the escape takes the last symbol); a wider channel keeps
  // the values nearest its median and escapes the rest.
  const int64_t max_values = static_cast<int64_t>(kMaxCdfSymbols) - 1;
  FrozenPrior frozen;
  for (int64_t i = 0; i < c; ++i) frozen.medians.push_back(prior.medians()[i].item<float>());
  for (int64_t step = 0; step < g.size(0); ++step) {
    const torch::Tensor gain = g[step];
    const torch::Tensor lo = torch::floor(q_lo * gain), hi = torch::ceil(q_hi * gain);
    std::vector<int64_t> first(c), count(c);
    int64_t width = 1;
    for (int64_t i = 0; i < c; ++i) {
      int64_t a = static_cast<int64_t>(lo[i].item<double>()), b = static_cast<int64_t>(hi[i].item<double>());
      a = std::min<int64_t>(a, 0), b = std::max<int64_t>(b, 0);
      if (b - a + 1 > max_values) {
        a = std::max<int64_t>(a, -max_values / 2);
        b = a + max_values - 1;
      }
      first[i] = a, count[i] = b - a + 1;
      width = std::max(width, count[i]);
    }
    // Symbol s stands for the bin [s - 1/2, s + 1/2] / gain around the median.
    const auto opts = torch::TensorOptions().dtype(torch::kDouble);
    torch::Tensor s = torch::arange(width, opts).view({1, 1, width}).expand({c, 1, width}).clone();
    for (int64_t i = 0; i < c; ++i) s[i] += static_cast<double>(first[i]);
    const torch::Tensor step_size = gain.reciprocal().view({c, 1, 1});
    const torch::Tensor x = med.view({c, 1, 1}) + s * step_size;
    const torch::Tensor pmf = interval_mass(prior.logits_cumulative(x - 0.5 * step_size),
                                            prior.logits_cumulative(x + 0.5 * step_size))
                                  .contiguous();
    const double* p = pmf.data_ptr<double>();
    for (int64_t i = 0; i < c; ++i) {
      std::vector<double> masses(p + i * width, p + i * width + count[i]);
      for (double& m : masses)
        if (!std::isfinite(m) || m < 0) m = 0;
      frozen.tables.push_back(make_cdf_table(masses, static_cast<int32_t>(first[i])));
    }
  }
  return frozen;
}

}  // namespace bottleneck

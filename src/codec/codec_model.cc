#include "codec/codec_model.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace bottleneck {

void validate(const CodecSpec& s) {
  if (s.channels != 1 && s.channels != 3) throw UsageError("codec: channels must be 1 or 3, got " + std::to_string(s.channels));
  if (s.n < 1 || s.n > 4096) throw UsageError("--codec-n must be in 1..4096, got " + std::to_string(s.n));
  if (s.m < 1 || s.m > 4096) throw UsageError("--codec-m must be in 1..4096, got " + std::to_string(s.m));
  if (s.activation != "relu" && s.activation != "gdn")
    throw UsageError("--codec-activation must be relu or gdn, got " + s.activation);
  if (s.rates < 1 || s.rates > 64) throw UsageError("codec: rates must be in 1..64, got " + std::to_string(s.rates));
  if (s.prior != "step" && s.prior != "gained") throw UsageError("--codec-prior must be step or gained, got " + s.prior);
}

std::string to_json(const CodecSpec& s) {
  nlohmann::ordered_json j;
  j["channels"] = s.channels;
  j["n"] = s.n;
  j["m"] = s.m;
  j["activation"] = s.activation;
  j["rates"] = s.rates;
  // Absent for "gained", so that the specs (and model ids) of the models made before the field
  // existed are unchanged.
  if (s.prior != "gained") j["prior"] = s.prior;
  return j.dump();
}

CodecSpec codec_spec_from_json(const std::string& json_text) {
  CodecSpec s;
  try {
    const auto j = nlohmann::json::parse(json_text);
    s.channels = j.at("channels").get<int>();
    s.n = j.at("n").get<int>();
    s.m = j.at("m").get<int>();
    s.activation = j.at("activation").get<std::string>();
    s.rates = j.at("rates").get<int>();
    s.prior = j.contains("prior") ? j.at("prior").get<std::string>() : "gained";
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kCorrupt, "", std::string("codec spec: ") + first_line(e.what()));
  }
  validate(s);
  return s;
}

namespace {
constexpr double kGdnPedestal = 1.0 / 68719476736.0;  // 2^-36, as in Balle's reparametrisation

// max(p, bound)^2 - pedestal with the bound's gradient cut, the effective positive parameter.
torch::Tensor reparam(const torch::Tensor& p, double minimum) {
  const double bound = std::sqrt(minimum + kGdnPedestal);
  return p.clamp_min(bound).pow(2) - kGdnPedestal;
}
}  // namespace

GdnImpl::GdnImpl(int64_t channels, bool inverse) : inverse_(inverse) {
  beta_ = register_parameter("beta", torch::full({channels}, std::sqrt(1.0 + kGdnPedestal)));
  gamma_ = register_parameter("gamma", torch::sqrt(0.1 * torch::eye(channels) + kGdnPedestal));
}

torch::Tensor GdnImpl::forward(const torch::Tensor& x) {
  const int64_t c = beta_.size(0);
  const torch::Tensor beta = reparam(beta_, 1e-6), gamma = reparam(gamma_, 0).view({c, c, 1, 1});
  const torch::Tensor norm = torch::conv2d(x * x, gamma, beta);
  return inverse_ ? x * torch::sqrt(norm) : x * torch::rsqrt(norm);
}

CodecModelImpl::CodecModelImpl(CodecSpec spec, const std::vector<double>& lambdas) : spec_(std::move(spec)) {
  validate(spec_);
  if (!lambdas.empty() && static_cast<int>(lambdas.size()) != spec_.rates)
    throw Error("codec model: " + std::to_string(lambdas.size()) + " lambdas for " + std::to_string(spec_.rates) + " rates");
  const int64_t c = spec_.channels, n = spec_.n, m = spec_.m;
  const bool gdn = spec_.activation == "gdn";
  auto conv = [](int64_t in, int64_t out) {
    return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 5).stride(2).padding(2));
  };
  auto deconv = [](int64_t in, int64_t out) {
    return torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in, out, 5).stride(2).padding(2).output_padding(1));
  };
  g_a_ = torch::nn::Sequential();
  g_s_ = torch::nn::Sequential();
  const int64_t a_in[] = {c, n, n, n}, a_out[] = {n, n, n, m};
  for (int i = 0; i < 4; ++i) {
    g_a_->push_back(conv(a_in[i], a_out[i]));
    if (i < 3) {
      if (gdn) g_a_->push_back(Gdn(n, false));
      else g_a_->push_back(torch::nn::ReLU());
    }
  }
  const int64_t s_in[] = {m, n, n, n}, s_out[] = {n, n, n, c};
  for (int i = 0; i < 4; ++i) {
    g_s_->push_back(deconv(s_in[i], s_out[i]));
    if (i < 3) {
      if (gdn) g_s_->push_back(Gdn(n, true));
      else g_s_->push_back(torch::nn::ReLU());
    }
  }
  register_module("g_a", g_a_);
  register_module("g_s", g_s_);
  torch::Tensor g = torch::ones({spec_.rates, m});
  if (!lambdas.empty()) {
    double log_mean = 0;
    for (double l : lambdas) log_mean += std::log(l) / static_cast<double>(lambdas.size());
    for (int r = 0; r < spec_.rates; ++r) g[r].fill_(std::sqrt(lambdas[r] / std::exp(log_mean)));
  }
  gain_ = register_parameter("gain", g.clone());
  inverse_gain_ = register_parameter("inverse_gain", g.reciprocal());
  prior = register_module("prior", EntropyBottleneck(m));
}

torch::Tensor CodecModelImpl::gains(const torch::Tensor& rates) const {
  return gain_.index_select(0, rates).view({rates.size(0), -1, 1, 1});
}

torch::Tensor CodecModelImpl::inverse_gains(const torch::Tensor& rates) const {
  return inverse_gain_.index_select(0, rates).view({rates.size(0), -1, 1, 1});
}

namespace {
torch::Tensor interpolate(const torch::Tensor& table, double r) {
  const int64_t last = table.size(0) - 1;
  if (!(r >= 0 && r <= static_cast<double>(last)))
    throw UsageError("rate position " + std::to_string(r) + " outside 0.." + std::to_string(last));
  const int64_t i = std::min<int64_t>(static_cast<int64_t>(std::floor(r)), std::max<int64_t>(last - 1, 0));
  if (last == 0) return table[0].view({1, -1, 1, 1});
  const double l = r - static_cast<double>(i);
  return (table[i].abs().pow(1 - l) * table[i + 1].abs().pow(l)).view({1, -1, 1, 1});
}
}  // namespace

torch::Tensor CodecModelImpl::gains_at(double r) const { return interpolate(gain_, r); }
torch::Tensor CodecModelImpl::inverse_gains_at(double r) const { return interpolate(inverse_gain_, r); }

torch::Tensor CodecModelImpl::pad_to_stride(const torch::Tensor& x) {
  const int64_t h = x.size(2), w = x.size(3);
  const int64_t ph = (kStride - h % kStride) % kStride, pw = (kStride - w % kStride) % kStride;
  if (ph == 0 && pw == 0) return x;
  // Replicated edges rather than zeros: a flat continuation costs almost no bits.
  return torch::nn::functional::pad(x, torch::nn::functional::PadFuncOptions({0, pw, 0, ph}).mode(torch::kReplicate));
}

CodecOutput CodecModelImpl::forward(const torch::Tensor& x, const torch::Tensor& gain, const torch::Tensor& inverse_gain,
                                    std::optional<at::Generator> noise) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == spec_.channels, "codec: expected B x ", spec_.channels, " x H x W");
  const int64_t h = x.size(2), w = x.size(3);
  const torch::Tensor y = g_a_->forward(pad_to_stride(x)) * gain;
  CodecOutput out;
  if (noise) {
    out.y_hat = y + (torch::rand(y.sizes(), *noise, y.options()) - 0.5);
  } else {
    out.y_hat = prior->quantize(y, prior_gain(gain));
  }
  out.likelihoods = prior->likelihood(out.y_hat, prior_gain(gain));
  out.x_hat = g_s_->forward(out.y_hat * inverse_gain)
                  .index({torch::indexing::Slice(), torch::indexing::Slice(), torch::indexing::Slice(0, h),
                          torch::indexing::Slice(0, w)});
  return out;
}

double CodecModelImpl::macs_per_pixel() const {
  const double c = spec_.channels, n = spec_.n, m = spec_.m;
  // Layer i of g_a produces 1/4^(i+1) of the pixels; g_s mirrors it (a transposed conv costs its
  // input positions times the kernel, the same count).
  const double per = 25.0 * (c * n / 4 + n * n / 16 + n * n / 64 + n * m / 256);
  const double gdn = spec_.activation == "gdn" ? n * n * (1.0 / 4 + 1.0 / 16 + 1.0 / 64) : 0;
  return 2 * (per + gdn);
}

torch::Tensor bits_per_pixel(const torch::Tensor& likelihoods, int64_t pixels) {
  return -torch::log2(likelihoods).sum({1, 2, 3}) / static_cast<double>(pixels);
}

}  // namespace bottleneck

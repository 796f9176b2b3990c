#include "nets/models.h"

#include <cstdlib>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "util/error.h"
#include "runtime/runtime.h"

// Layer names and order are a contract with the exporter and the checkpoints (the exporter
// regenerates forward() from the spec and copies parameters by these names):
//
//   enc0_conv{i}          3x3 convs at full resolution
//   down{l}               3x3 stride-2 conv from level l-1 to level l (l = 1..depth)
//   enc{l}_conv{i}        the further 3x3 convs at level l
//   squeeze, expand       1x1 convs into and out of the bottleneck code at the lowest level
//   dec{l}_up             upsampling from level l to level l-1: a 2x2 stride-2 transposed conv,
//                         or (upsample "bilinear") the 3x3 conv after a 2x bilinear resize
//   dec{l}_conv{i}        3x3 convs at level l-1 after that upsampling
//   head                  3x3 conv to the output channels
//
// Every conv has a bias; there is no normalisation. Activations have no parameters:
// "leaky_relu" uses the PyTorch default slope 0.01.

namespace bottleneck {
namespace {

namespace F = torch::nn::functional;

enum class Activation { kRelu, kLeakyRelu, kSilu };
enum class Head { kResidual, kSigmoid, kLinear };

Activation parse_activation(const std::string& name) {
  if (name == "leaky_relu") return Activation::kLeakyRelu;
  if (name == "silu") return Activation::kSilu;
  return Activation::kRelu;  // validate() has rejected anything else
}

Head parse_head(const std::string& name) {
  if (name == "residual") return Head::kResidual;
  if (name == "sigmoid") return Head::kSigmoid;
  return Head::kLinear;
}

// Shared machinery of both networks: layer construction with MAC bookkeeping, activation,
// upsampling and the output head.
class NetBase : public AutoencoderImpl {
 public:
  explicit NetBase(const ArchSpec& spec)
      : AutoencoderImpl(spec),
        activation_(parse_activation(spec.activation)),
        head_kind_(parse_head(spec.head)),
        bilinear_(spec.upsample == "bilinear") {}

 protected:
  // A k x k conv (padding k/2) whose output lies at `level` (1/2^level of the input size).
  torch::nn::Conv2d conv(const std::string& name, int in, int out, int k, int level,
                         int stride = 1) {
    macs_per_pixel_ +=
        static_cast<double>(in) * out * k * k / static_cast<double>(1LL << (2 * level));
    return register_module(
        name,
        torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2)));
  }

  // Upsampling from `level` to level - 1, as the spec asks.
  struct Up {
    torch::nn::ConvTranspose2d transposed{nullptr};
    torch::nn::Conv2d conv{nullptr};
  };
  Up up(const std::string& name, int in, int out, int level) {
    Up u;
    if (bilinear_) {
      u.conv = conv(name, in, out, 3, level - 1);
    } else {
      // Each output pixel of a 2x2 stride-2 transposed conv receives exactly one tap.
      macs_per_pixel_ +=
          static_cast<double>(in) * out / static_cast<double>(1LL << (2 * (level - 1)));
      u.transposed = register_module(
          name,
          torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in, out, 2).stride(2)));
    }
    return u;
  }

  // A conv in the compute dtype (padding k/2 as conv() builds them).
  torch::Tensor run(torch::nn::Conv2d& c, const torch::Tensor& x) const {
    if (compute_dtype_ == torch::kFloat) return c->forward(x);
    const auto& o = c->options;
    return F::conv2d(x, c->weight.to(compute_dtype_),
                     F::Conv2dFuncOptions().bias(c->bias.to(compute_dtype_)).stride(o.stride())
                         .padding((*o.kernel_size())[0] / 2));
  }

  torch::Tensor apply_up(Up& u, const torch::Tensor& x) const {
    if (u.transposed) {
      // A 2x2 stride-2 transposed conv is a 1x1 conv to 4x the channels followed by a pixel
      // shuffle: out[o, 2h+i, 2w+j] = b[o] + sum_c x[c, h, w] W[c, o, i, j]. The same numbers,
      // but through the fast convolution kernels: LibTorch 1.13 runs the transposed conv on
      // its slow path on the CPU (3x the time of the 1x1 conv) and fails on it in bf16.
      const torch::Tensor& w = u.transposed->weight;  // in x out x 2 x 2
      const torch::Tensor w1x1 = w.permute({1, 2, 3, 0}).reshape({-1, w.size(0), 1, 1});
      const torch::Tensor b = u.transposed->bias.repeat_interleave(4);
      return torch::pixel_shuffle(torch::conv2d(x, w1x1.to(x.scalar_type()), b.to(x.scalar_type())), 2);
    }
    auto options = F::InterpolateFuncOptions()
                       .scale_factor(std::vector<double>{2.0, 2.0})
                       .mode(torch::kBilinear)
                       .align_corners(false);
    return run(u.conv, F::interpolate(x, options));
  }

  torch::Tensor act(const torch::Tensor& x) const {
    switch (activation_) {
      case Activation::kLeakyRelu:
        return torch::leaky_relu(x, 0.01);
      case Activation::kSilu:
        return torch::silu(x);
      case Activation::kRelu:
        break;
    }
    return torch::relu(x);
  }

  void make_head(int in) {
    head_ = conv("head", in, spec_.out_channels, 3, 0);
    if (head_kind_ == Head::kResidual) {
      // The residual output is x - head(features). With the default init the head predicts
      // "noise" as large as the image itself, so training would start from garbage and spend
      // its first steps undoing it; a head 10x smaller starts the network near the identity
      // (the noisy input, a good first guess) while still passing gradients to every layer,
      // which an all-zero head would not.
      torch::NoGradGuard no_grad;
      head_->weight.mul_(0.1);
      head_->bias.mul_(0.1);
    }
  }

  // `padded` is the network input after pad_to_multiple, `features` the last full-res features.
  torch::Tensor apply_head(const torch::Tensor& padded, const torch::Tensor& features) {
    torch::Tensor y = run(head_, features).to(torch::kFloat);
    switch (head_kind_) {
      case Head::kResidual:
        return padded - y;
      case Head::kSigmoid:
        return torch::sigmoid(y);
      case Head::kLinear:
        break;
    }
    return y;
  }

  torch::Tensor pad_input(const torch::Tensor& x) const {
    if (x.dim() != 4 || x.size(1) != spec_.in_channels)
      throw Error("model expects N x " + std::to_string(spec_.in_channels) +
                  " x H x W input, got shape " + shape_string(x));
    return pad_to_multiple(x, spec_.size_multiple());
  }

  torch::Tensor to_compute(const torch::Tensor& x) const {
    return x.scalar_type() == compute_dtype_ ? x : x.to(compute_dtype_);
  }

  static std::string shape_string(const torch::Tensor& x) {
    std::string s;
    for (int64_t i = 0; i < x.dim(); ++i) s += (i ? " x " : "") + std::to_string(x.size(i));
    return s.empty() ? "(scalar)" : s;
  }

  Activation activation_;
  Head head_kind_;
  bool bilinear_;
  torch::nn::Conv2d head_{nullptr};
};

std::string name_at(const char* prefix, int level, const char* suffix, int index = -1) {
  std::string s = prefix + std::to_string(level) + suffix;
  if (index >= 0) s += std::to_string(index);
  return s;
}

// The denoiser: an encoder-decoder with additive skips at every level.
class UNetImpl : public NetBase {
 public:
  explicit UNetImpl(const ArchSpec& spec) : NetBase(spec) {
    const std::vector<int>& w = spec.widths;
    const int depth = spec.depth();
    const int convs = spec.convs_per_level;
    enc_.resize(depth + 1);
    down_.resize(depth + 1, torch::nn::Conv2d(nullptr));
    for (int i = 0; i < convs; ++i)
      enc_[0].push_back(
          conv(name_at("enc", 0, "_conv", i), i == 0 ? spec.in_channels : w[0], w[0], 3, 0));
    for (int l = 1; l <= depth; ++l) {
      down_[l] = conv(name_at("down", l, ""), w[l - 1], w[l], 3, l, 2);
      for (int i = 0; i + 1 < convs; ++i)
        enc_[l].push_back(conv(name_at("enc", l, "_conv", i), w[l], w[l], 3, l));
    }
    const int b = spec.bottleneck_channels;
    if (b > 0 && b != w.back()) {
      squeeze_ = conv("squeeze", w.back(), b, 1, depth);
      expand_ = conv("expand", b, w.back(), 1, depth);
    }
    up_.resize(depth + 1);
    dec_.resize(depth + 1);
    for (int l = depth; l >= 1; --l) {
      up_[l] = up(name_at("dec", l, "_up"), w[l], w[l - 1], l);
      for (int i = 0; i < convs; ++i)
        dec_[l].push_back(conv(name_at("dec", l, "_conv", i), w[l - 1], w[l - 1], 3, l - 1));
    }
    make_head(w[0]);
  }

  torch::Tensor forward(torch::Tensor x) override {
    const torch::Tensor padded = pad_input(x);
    std::vector<torch::Tensor> skips;
    torch::Tensor f = run_encoder(padded, &skips);
    if (expand_) f = act(run(expand_, f));
    for (int l = spec_.depth(); l >= 1; --l) {
      f = apply_up(up_[l], f) + skips[l - 1];
      for (auto& c : dec_[l]) f = act(run(c, f));
    }
    return crop_to(apply_head(padded, f), x.size(2), x.size(3));
  }

  torch::Tensor encode(torch::Tensor x) override { return run_encoder(pad_input(x), nullptr).to(torch::kFloat); }

 private:
  // Returns the lowest-level features (squeezed when there is a squeeze); the outputs of
  // levels 0..depth-1 go to *skips.
  torch::Tensor run_encoder(const torch::Tensor& padded, std::vector<torch::Tensor>* skips) {
    torch::Tensor f = to_compute(padded);
    for (int l = 0; l <= spec_.depth(); ++l) {
      if (l > 0) f = act(run(down_[l], f));
      for (auto& c : enc_[l]) f = act(run(c, f));
      if (skips && l < spec_.depth()) skips->push_back(f);
    }
    if (squeeze_) f = act(run(squeeze_, f));
    return f;
  }

  std::vector<std::vector<torch::nn::Conv2d>> enc_;  // [level][i]
  std::vector<torch::nn::Conv2d> down_;              // [level], level 0 unused
  torch::nn::Conv2d squeeze_{nullptr}, expand_{nullptr};
  std::vector<Up> up_;                               // [level], level 0 unused
  std::vector<std::vector<torch::nn::Conv2d>> dec_;  // [level][i]
};

// The classic autoencoder: everything must pass through the narrow code, no skips.
class ConvAEImpl : public NetBase {
 public:
  explicit ConvAEImpl(const ArchSpec& spec) : NetBase(spec) {
    const std::vector<int>& w = spec.widths;
    const int depth = spec.depth();
    const int convs = spec.convs_per_level;
    enc_.resize(depth + 1);
    down_.resize(depth + 1, torch::nn::Conv2d(nullptr));
    enc_[0].push_back(conv("enc0_conv0", spec.in_channels, w[0], 3, 0));
    for (int l = 1; l <= depth; ++l) {
      down_[l] = conv(name_at("down", l, ""), w[l - 1], w[l], 3, l, 2);
      for (int i = 0; i + 1 < convs; ++i)
        enc_[l].push_back(conv(name_at("enc", l, "_conv", i), w[l], w[l], 3, l));
    }
    squeeze_ = conv("squeeze", w.back(), spec.bottleneck_channels, 1, depth);
    expand_ = conv("expand", spec.bottleneck_channels, w.back(), 1, depth);
    // The decoder mirrors the encoder: an activated upsampling per level in place of the
    // strided conv, then the same number of further convs.
    up_.resize(depth + 1);
    dec_.resize(depth + 1);
    for (int l = depth; l >= 1; --l) {
      up_[l] = up(name_at("dec", l, "_up"), w[l], w[l - 1], l);
      for (int i = 0; i + 1 < convs; ++i)
        dec_[l].push_back(conv(name_at("dec", l, "_conv", i), w[l - 1], w[l - 1], 3, l - 1));
    }
    make_head(w[0]);
  }

  torch::Tensor forward(torch::Tensor x) override {
    const torch::Tensor padded = pad_input(x);
    torch::Tensor f = act(run(expand_, run_encoder(padded)));
    for (int l = spec_.depth(); l >= 1; --l) {
      f = act(apply_up(up_[l], f));
      for (auto& c : dec_[l]) f = act(run(c, f));
    }
    return crop_to(apply_head(padded, f), x.size(2), x.size(3));
  }

  torch::Tensor encode(torch::Tensor x) override { return run_encoder(pad_input(x)).to(torch::kFloat); }

 private:
  torch::Tensor run_encoder(const torch::Tensor& padded) {
    torch::Tensor f = to_compute(padded);
    for (int l = 0; l <= spec_.depth(); ++l) {
      if (l > 0) f = act(run(down_[l], f));
      for (auto& c : enc_[l]) f = act(run(c, f));
    }
    return act(run(squeeze_, f));
  }

  std::vector<std::vector<torch::nn::Conv2d>> enc_;
  std::vector<torch::nn::Conv2d> down_;
  torch::nn::Conv2d squeeze_{nullptr}, expand_{nullptr};
  std::vector<Up> up_;
  std::vector<std::vector<torch::nn::Conv2d>> dec_;
};

// Pads one spatial dimension (2 = H, 3 = W) at its end.
torch::Tensor pad_end(const torch::Tensor& x, int dim, int64_t amount) {
  if (amount == 0) return x;
  // Reflection needs pad < side (it mirrors without repeating the edge); tiny sides replicate.
  const auto mode = amount < x.size(dim) ? F::PadFuncOptions::mode_t(torch::kReflect)
                                         : F::PadFuncOptions::mode_t(torch::kReplicate);
  // F::pad lists (left, right, top, bottom) for the last two dimensions.
  std::vector<int64_t> pad =
      dim == 3 ? std::vector<int64_t>{0, amount, 0, 0} : std::vector<int64_t>{0, 0, 0, amount};
  return F::pad(x, F::PadFuncOptions(pad).mode(mode));
}

}  // namespace

void AutoencoderImpl::set_compute_dtype(c10::ScalarType dtype) {
  if (dtype != torch::kFloat && dtype != torch::kBFloat16)
    throw Error("compute dtype must be float32 or bfloat16");
  if (dtype == torch::kBFloat16 && !bf16_convolution_available()) {
    const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
    throw Error(ErrorKind::kUnsupported, "",
                std::string("bf16 compute is not available here: LibTorch cannot run bfloat16 convolutions") +
                    (cap ? std::string(" with ONEDNN_MAX_CPU_ISA=") + cap : std::string()) + "; use --precision fp32");
  }
  compute_dtype_ = dtype;
}

Autoencoder make_model(const ArchSpec& spec) {
  validate(spec);
  if (spec.kind == "conv-ae") return std::make_shared<ConvAEImpl>(spec);
  return std::make_shared<UNetImpl>(spec);
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

void use_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
}

torch::Tensor to_channels_last(const torch::Tensor& x) {
  return x.dim() == 4 ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x;
}

torch::Tensor pad_to_multiple(const torch::Tensor& x, int multiple) {
  if (x.dim() != 4) throw Error("pad_to_multiple expects an N x C x H x W tensor");
  if (multiple < 1)
    throw Error("pad_to_multiple: multiple must be >= 1, got " + std::to_string(multiple));
  const int64_t m = multiple;
  const int64_t pad_h = (m - x.size(2) % m) % m;
  const int64_t pad_w = (m - x.size(3) % m) % m;
  return pad_end(pad_end(x, 3, pad_w), 2, pad_h);
}

torch::Tensor crop_to(const torch::Tensor& x, int64_t height, int64_t width) {
  if (x.dim() != 4 || height < 1 || width < 1 || height > x.size(2) || width > x.size(3))
    throw Error("crop_to: cannot crop a tensor of " + std::to_string(x.dim()) + " dims to " +
                std::to_string(height) + " x " + std::to_string(width));
  if (height == x.size(2) && width == x.size(3)) return x;
  return x.narrow(2, 0, height).narrow(3, 0, width);
}

}  // namespace bottleneck

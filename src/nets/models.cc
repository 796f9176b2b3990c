#include "nets/models.h"

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "nets/layer_plan.h"
#include "runtime/runtime.h"
#include "util/error.h"
#include "util/text_format.h"

// The layers and their names come from the plan (layer_plan.h); this file builds the modules
// it lists and runs its steps.

namespace bottleneck {
namespace {

namespace F = torch::nn::functional;

// The network a plan describes: its layers registered in the plan's order (so parameter order,
// initialisation and checkpoints are those of the hand-written networks this replaced) and its
// steps run in order.
class PlanNet : public AutoencoderImpl {
 public:
  explicit PlanNet(const ArchSpec& spec) : AutoencoderImpl(spec), plan_(make_plan(spec)) {
    macs_per_pixel_ = plan_.macs_per_pixel();
    for (const PlanStep* step : plan_.layers()) {
      Layer layer;
      if (step->op == PlanStep::Op::kToLatent || step->op == PlanStep::Op::kFromLatent) {
        layer.linear = register_module(step->name, torch::nn::Linear(step->in, step->out));
      } else if (step->op == PlanStep::Op::kUp && plan_.upsample == Upsample::kTransposed) {
        layer.transposed = register_module(
            step->name, torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(step->in, step->out, 2).stride(2)));
      } else {
        layer.conv = register_module(
            step->name, torch::nn::Conv2d(torch::nn::Conv2dOptions(step->in, step->out, step->kernel)
                                              .stride(step->stride)
                                              .padding(step->kernel / 2)));
      }
      layers_.emplace(step, layer);
    }
    if (plan_.head_kind == Head::kResidual) {
      // The residual output is x - head(features). With the default init the head predicts
      // "noise" as large as the image itself, so training would start from garbage and spend
      // its first steps undoing it; a head 10x smaller starts the network near the identity
      // (the noisy input, a good first guess) while still passing gradients to every layer,
      // which an all-zero head would not.
      torch::NoGradGuard no_grad;
      auto& head = layers_.at(&plan_.head).conv;
      head->weight.mul_(0.1);
      head->bias.mul_(0.1);
    }
  }

  torch::Tensor forward(torch::Tensor x) override {
    const torch::Tensor padded = pad_input(x);
    std::vector<torch::Tensor> skips;
    torch::Tensor f = run_steps(plan_.encoder, to_compute(padded), &skips);
    f = run_steps(plan_.decoder, f, &skips);
    torch::Tensor y = run(layers_.at(&plan_.head).conv, f).to(torch::kFloat);
    switch (plan_.head_kind) {
      case Head::kResidual:
        y = padded - y;
        break;
      case Head::kSigmoid:
        y = torch::sigmoid(y);
        break;
      case Head::kLinear:
        break;
    }
    return crop_to(y, x.size(2), x.size(3));
  }

  torch::Tensor encode(torch::Tensor x) override {
    return run_steps(plan_.encoder, to_compute(pad_input(x)), nullptr).to(torch::kFloat);
  }

  torch::Tensor decode(torch::Tensor code, int64_t height, int64_t width) override {
    for (const PlanStep& step : plan_.decoder)
      if (step.op == PlanStep::Op::kAddSkip)
        throw Error(ErrorKind::kUnsupported, "", "decode needs a network whose code is all it keeps (conv-ae), not one with skips");
    if (plan_.head_kind == Head::kResidual)
      throw Error(ErrorKind::kUnsupported, "", "decode needs a sigmoid or linear head (a residual head adds the input)");
    if (plan_.grid > 0) {
      if (height != plan_.input_size || width != plan_.input_size)
        throw Error(ErrorKind::kInvalidData, "",
                    "this network's dense code decodes to " + std::to_string(plan_.input_size) + " x " +
                        std::to_string(plan_.input_size) + " only, not " + std::to_string(height) + " x " +
                        std::to_string(width));
      if (code.dim() != 2 || code.size(1) != spec_.latent)
        throw Error(ErrorKind::kInvalidData, "",
                    "a dense code is N x " + std::to_string(spec_.latent) + ", got " + shape_text(code.sizes().vec()));
    }
    const int64_t m = spec_.size_multiple();
    const int64_t code_channels = plan_.decoder.empty() ? spec_.widths.back() : plan_.decoder.front().in;
    if (plan_.grid == 0 && (code.dim() != 4 || code.size(1) != code_channels || code.size(2) != (height + m - 1) / m ||
                            code.size(3) != (width + m - 1) / m))
      throw Error(ErrorKind::kInvalidData, "",
                  "a code for a " + std::to_string(height) + " x " + std::to_string(width) + " output is N x " +
                      std::to_string(code_channels) + " x " + std::to_string((height + m - 1) / m) + " x " +
                      std::to_string((width + m - 1) / m) + ", got " + shape_text(code.sizes().vec()));
    torch::Tensor f = run_steps(plan_.decoder, to_compute(code), nullptr);
    torch::Tensor y = run(layers_.at(&plan_.head).conv, f).to(torch::kFloat);
    if (plan_.head_kind == Head::kSigmoid) y = torch::sigmoid(y);
    return crop_to(y, height, width);
  }

 private:
  struct Layer {
    torch::nn::Conv2d conv{nullptr};
    torch::nn::ConvTranspose2d transposed{nullptr};
    torch::nn::Linear linear{nullptr};
  };

  // Runs `steps` from f; skips are kept in *skips (nullptr: not needed, encode() alone).
  torch::Tensor run_steps(const std::vector<PlanStep>& steps, torch::Tensor f, std::vector<torch::Tensor>* skips) {
    for (const PlanStep& step : steps) {
      switch (step.op) {
        case PlanStep::Op::kConv:
          f = run(layers_.at(&step).conv, f);
          break;
        case PlanStep::Op::kUp:
          f = apply_up(layers_.at(&step), f);
          break;
        case PlanStep::Op::kSaveSkip:
          if (skips) {
            if (static_cast<int>(skips->size()) <= step.index) skips->resize(step.index + 1);
            (*skips)[step.index] = f;
          }
          continue;
        case PlanStep::Op::kAddSkip:
          f = f + skips->at(step.index);
          continue;
        case PlanStep::Op::kToLatent:
          f = linear(layers_.at(&step).linear, f.flatten(1));
          break;
        case PlanStep::Op::kFromLatent:
          f = linear(layers_.at(&step).linear, f).view({-1, step.out / (plan_.grid * plan_.grid), plan_.grid, plan_.grid});
          break;
      }
      if (step.activate) f = act(f);
    }
    return f;
  }

  // A conv in the compute dtype (padding k/2 as conv() builds them).
  torch::Tensor run(torch::nn::Conv2d& c, const torch::Tensor& x) const {
    if (compute_dtype_ == torch::kFloat) return c->forward(x);
    const auto& o = c->options;
    return F::conv2d(x, c->weight.to(compute_dtype_),
                     F::Conv2dFuncOptions().bias(c->bias.to(compute_dtype_)).stride(o.stride())
                         .padding((*o.kernel_size())[0] / 2));
  }

  torch::Tensor linear(torch::nn::Linear& l, const torch::Tensor& x) const {
    if (compute_dtype_ == torch::kFloat) return l->forward(x);
    return F::linear(x, l->weight.to(compute_dtype_), l->bias.to(compute_dtype_));
  }

  torch::Tensor apply_up(Layer& u, const torch::Tensor& x) const {
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
    switch (plan_.activation) {
      case Activation::kLeakyRelu:
        return torch::leaky_relu(x, 0.01);
      case Activation::kSilu:
        return torch::silu(x);
      case Activation::kRelu:
        break;
    }
    return torch::relu(x);
  }

  torch::Tensor pad_input(const torch::Tensor& x) const {
    if (x.dim() != 4 || x.size(1) != spec_.in_channels)
      throw Error("model expects N x " + std::to_string(spec_.in_channels) +
                  " x H x W input, got shape " + shape_text(x.sizes().vec()));
    if (plan_.grid > 0 && (x.size(2) != plan_.input_size || x.size(3) != plan_.input_size))
      throw Error(ErrorKind::kInvalidData, "",
                  "this network's dense code takes " + std::to_string(plan_.input_size) + " x " +
                      std::to_string(plan_.input_size) + " images only, got " + std::to_string(x.size(3)) + " x " +
                      std::to_string(x.size(2)));
    return pad_to_multiple(x, spec_.size_multiple());
  }

  torch::Tensor to_compute(const torch::Tensor& x) const {
    return x.scalar_type() == compute_dtype_ ? x : x.to(compute_dtype_);
  }

  LayerPlan plan_;
  std::map<const PlanStep*, Layer> layers_;  // keyed by the plan's own steps (plan_ never changes)
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

torch::Tensor AutoencoderImpl::decode(torch::Tensor, int64_t, int64_t) {
  throw Error(ErrorKind::kUnsupported, "", "this network has no decode()");
}

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
  return std::make_shared<PlanNet>(spec);
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

#include "nets/layer_plan.h"

#include "util/error.h"

namespace bottleneck {

namespace {

std::string name_at(const char* prefix, int level, const char* suffix, int index = -1) {
  std::string s = prefix + std::to_string(level) + suffix;
  if (index >= 0) s += std::to_string(index);
  return s;
}

PlanStep conv(std::string name, int in, int out, int kernel, int level, int stride = 1) {
  PlanStep s;
  s.op = PlanStep::Op::kConv;
  s.name = std::move(name);
  s.in = in;
  s.out = out;
  s.kernel = kernel;
  s.stride = stride;
  s.level = level;
  s.activate = true;
  return s;
}

PlanStep skip(PlanStep::Op op, int index) {
  PlanStep s;
  s.op = op;
  s.index = index;
  return s;
}

}  // namespace

LayerPlan make_plan(const ArchSpec& spec) {
  validate(spec);
  LayerPlan plan;
  plan.kind = spec.kind;
  plan.activation = spec.activation;
  plan.head_kind = spec.head;
  plan.upsample = spec.upsample;
  const bool unet = plan.kind == ArchKind::kUNet;
  const std::vector<int>& w = spec.widths;
  const int depth = spec.depth();
  const int convs = spec.convs_per_level;

  // Encoder. conv-ae has a single conv at full resolution (the stride-2 convs carry the rest);
  // the U-Net keeps each level's output, but the lowest, for its skips.
  auto& enc = plan.encoder;
  const int enc0_convs = unet ? convs : 1;
  for (int i = 0; i < enc0_convs; ++i) enc.push_back(conv(name_at("enc", 0, "_conv", i), i == 0 ? spec.in_channels : w[0], w[0], 3, 0));
  for (int l = 0; l <= depth; ++l) {
    if (l > 0) {
      enc.push_back(conv(name_at("down", l, ""), w[l - 1], w[l], 3, l - 1, 2));
      for (int i = 0; i + 1 < convs; ++i) enc.push_back(conv(name_at("enc", l, "_conv", i), w[l], w[l], 3, l));
    }
    if (unet && l < depth) enc.push_back(skip(PlanStep::Op::kSaveSkip, l));
  }
  const int b = spec.bottleneck_channels;
  const bool squeeze = b > 0 && (!unet || b != w.back());
  if (squeeze) enc.push_back(conv("squeeze", w.back(), b, 1, depth));
  // A dense code: the lowest level's whole map through a linear layer, the code left linear.
  const int map_channels = squeeze ? b : w.back();
  if (spec.dense()) {
    plan.grid = spec.code_grid();
    plan.input_size = spec.input_size;
    PlanStep to = conv("to_latent", map_channels * plan.grid * plan.grid, spec.latent, 1, depth);
    to.op = PlanStep::Op::kToLatent;
    to.activate = false;
    enc.push_back(to);
  }

  // Decoder: per level an upsampling, added to the skip (U-Net) or activated in place of the
  // level's first conv (conv-ae), then the level's convs.
  auto& dec = plan.decoder;
  if (spec.dense()) {
    PlanStep from = conv("from_latent", spec.latent, map_channels * plan.grid * plan.grid, 1, depth);
    from.op = PlanStep::Op::kFromLatent;
    dec.push_back(from);
  }
  if (squeeze) dec.push_back(conv("expand", b, w.back(), 1, depth));
  for (int l = depth; l >= 1; --l) {
    PlanStep up;
    up.op = PlanStep::Op::kUp;
    up.name = name_at("dec", l, "_up");
    up.in = w[l];
    up.out = w[l - 1];
    up.kernel = plan.upsample == Upsample::kBilinear ? 3 : 2;
    up.stride = plan.upsample == Upsample::kBilinear ? 1 : 2;
    up.level = l;
    up.activate = !unet;
    dec.push_back(up);
    if (unet) dec.push_back(skip(PlanStep::Op::kAddSkip, l - 1));
    const int level_convs = unet ? convs : convs - 1;
    for (int i = 0; i < level_convs; ++i) dec.push_back(conv(name_at("dec", l, "_conv", i), w[l - 1], w[l - 1], 3, l - 1));
  }
  plan.head = conv("head", w[0], spec.out_channels, 3, 0);
  plan.head.activate = false;
  return plan;
}

std::vector<const PlanStep*> LayerPlan::layers() const {
  std::vector<const PlanStep*> out;
  for (const auto* part : {&encoder, &decoder})
    for (const PlanStep& s : *part)
      if (s.op != PlanStep::Op::kSaveSkip && s.op != PlanStep::Op::kAddSkip) out.push_back(&s);
  out.push_back(&head);
  return out;
}

double LayerPlan::macs_per_pixel() const {
  double macs = 0;
  for (const PlanStep* s : layers()) {
    if (s->op == PlanStep::Op::kToLatent || s->op == PlanStep::Op::kFromLatent) {
      // in x out once per image, over the grid^2 x 4^level pixels of the padded input.
      macs += static_cast<double>(s->in) * s->out / (static_cast<double>(grid) * grid * static_cast<double>(1LL << (2 * s->level)));
      continue;
    }
    const bool transposed = s->op == PlanStep::Op::kUp && upsample == Upsample::kTransposed;
    // Output level: a stride-2 conv halves the resolution, an upsampling doubles it. Each output
    // pixel of a 2x2 stride-2 transposed conv receives exactly one tap.
    const int out_level = s->op == PlanStep::Op::kUp ? s->level - 1 : s->level + (s->stride == 2 ? 1 : 0);
    const double taps = transposed ? 1 : static_cast<double>(s->kernel) * s->kernel;
    macs += static_cast<double>(s->in) * s->out * taps / static_cast<double>(1LL << (2 * out_level));
  }
  return macs;
}

int LayerPlan::receptive_radius() const {
  // Sum over the layers of (kernel radius x the scale the layer reads at): a 3x3 conv adds one
  // pixel of its input's resolution; a 2x upsampling adds up to one coarse pixel, and the
  // bilinear kind's conv one more fine pixel.
  if (grid > 0) return grid << encoder.back().level;  // every output pixel sees the whole padded input
  int radius = 0;
  for (const PlanStep* s : layers()) {
    if (s->op == PlanStep::Op::kUp) {
      radius += 1 << s->level;
      if (upsample == Upsample::kBilinear) radius += 1 << (s->level - 1);
    } else {
      radius += (s->kernel / 2) << s->level;
    }
  }
  return radius;
}

}  // namespace bottleneck

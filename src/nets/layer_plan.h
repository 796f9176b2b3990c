#pragma once

#include <string>
#include <vector>

#include "nets/arch_spec.h"

namespace bottleneck {

// A network as data: every layer once, with the name its parameters carry in checkpoints and
// exports, its shapes, the resolution it reads and its place in the forward pass. models.cc
// builds and runs the modules from it, the exporter writes the TorchScript from it, and the
// MAC count and the tiler's margin are sums over it, so the four cannot disagree. A new
// architecture is a new branch of make_plan; nothing else walks the layers. Torch-free.
//
// Layer names (a file-format contract, docs/formats.md):
//   enc0_conv{i}   3x3 convs at full resolution
//   down{l}        3x3 stride-2 conv from level l-1 to level l (l = 1..depth)
//   enc{l}_conv{i} the further 3x3 convs at level l
//   squeeze, expand 1x1 convs into and out of the bottleneck code at the lowest level
//   to_latent, from_latent  the dense code's linear layers (conv-ae with a latent): the
//                  lowest level's map flattened to the code, and the code back to that map
//   dec{l}_up      upsampling from level l to l-1: a 2x2 stride-2 transposed conv, or (bilinear)
//                  the 3x3 conv after a 2x bilinear resize
//   dec{l}_conv{i} 3x3 convs at level l-1 after that upsampling
//   head           3x3 conv to the output channels
// Every conv has a bias; there is no normalisation.

struct PlanStep {
  enum class Op {
    kConv,      // f = conv(f), k x k, padding k / 2
    kUp,        // f = 2x upsampling of f (as the plan's Upsample says)
    kSaveSkip,  // skip[index] = f
    kAddSkip,   // f = f + skip[index]
    kToLatent,  // f = linear(flatten(f)): in = the lowest level's C x grid x grid values, out = the code
    kFromLatent,  // f = linear(f) as C x grid x grid (C = out / grid^2)
  };
  Op op = Op::kConv;
  std::string name;   // parameter prefix (kConv, kUp)
  int in = 0, out = 0, kernel = 3, stride = 1;  // the dense kinds: kernel 1 (in x out weights)
  int level = 0;      // resolution level read: the layer sees 1/2^level of the padded input
  bool activate = false;  // the activation follows
  int index = -1;     // skip index (kSaveSkip, kAddSkip)
};

struct LayerPlan {
  ArchKind kind = ArchKind::kUNet;
  Activation activation = Activation::kRelu;
  Head head_kind = Head::kResidual;
  Upsample upsample = Upsample::kTransposed;
  std::vector<PlanStep> encoder;  // padded input -> the bottleneck code (encode() returns it)
  std::vector<PlanStep> decoder;  // code -> full-resolution features; skips are the encoder's
  PlanStep head;                  // the output conv; the head kind says what follows it
  int grid = 0;                   // a dense code's lowest level is grid x grid (0: no dense code)
  int input_size = 0;             // the one input side a dense code takes (0: any)

  // Multiply-accumulates per input pixel of one forward pass.
  double macs_per_pixel() const;
  // Pixels of context on each side that influence an output pixel (an upper bound): tiles
  // with this margin reproduce whole-image inference. A dense code sees the whole input.
  int receptive_radius() const;
  // Every layer with parameters, in registration order (encoder, decoder, head).
  std::vector<const PlanStep*> layers() const;
};

// Validates the spec first (UsageError naming the field).
LayerPlan make_plan(const ArchSpec& spec);

}  // namespace bottleneck

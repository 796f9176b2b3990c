#pragma once

#include <string>
#include <vector>

namespace bottleneck {

// The typed choices of a spec. Strings exist only at the edges (JSON, CLI, messages): name_of
// gives the spelling, parse_* read it back.
enum class ArchKind { kUNet, kConvAE };
enum class Activation { kRelu, kLeakyRelu, kSilu };  // leaky_relu: PyTorch's slope 0.01
enum class Head { kResidual, kSigmoid, kLinear };
enum class Upsample { kTransposed, kBilinear };

const char* name_of(ArchKind kind);              // "unet", "conv-ae"
const char* name_of(Activation activation);      // "relu", "leaky_relu", "silu"
const char* name_of(Head head);                  // "residual", "sigmoid", "linear"
const char* name_of(Upsample upsample);          // "transposed", "bilinear"
// Throw UsageError("arch spec", "<field> must be one of ..., got \"<text>\"").
ArchKind parse_arch_kind(const std::string& text);
Activation parse_activation(const std::string& text);
Head parse_head(const std::string& text);
Upsample parse_upsample(const std::string& text);

// What network to build. Serialised as JSON inside checkpoints and exported models, so the
// field names below are part of the file formats (docs/formats.md).
struct ArchSpec {
  ArchKind kind = ArchKind::kUNet; // kUNet (skips, the denoiser) or kConvAE (narrow bottleneck)
  int in_channels = 1;              // 1 (gray) or 3 (RGB)
  int out_channels = 1;             // 1 or 3; a residual head needs out == in
  std::vector<int> widths = {32, 64, 128};  // channels per level, full resolution first;
                                    // depth (number of 2x downsamplings) = widths.size() - 1
  int convs_per_level = 2;          // 3x3 convolutions per level in encoder and decoder, >= 1
  int bottleneck_channels = 0;      // channels of the code at the lowest level;
                                    // conv-ae: required > 0 (the narrow bottleneck);
                                    // unet: 0 = widths.back() (no extra squeeze)
  Activation activation = Activation::kRelu;
  Head head = Head::kResidual;      // kResidual: output = input - predicted noise (unet only);
                                    // kSigmoid: output = sigmoid(last conv);
                                    // kLinear:  output = last conv
  Upsample upsample = Upsample::kTransposed;  // kTransposed (2x2 stride-2 transposed conv) or
                                              // kBilinear (bilinear 2x upsampling, 3x3 conv)
  int latent = 0;                   // > 0 (conv-ae only): a dense code of this many numbers, a
                                    // linear layer from the whole lowest level (after the
                                    // squeeze, if bottleneck_channels > 0) and one back;
                                    // 0: the code is the lowest level's feature map
  int input_size = 0;               // the side of the one square input a dense code fits
                                    // (required with latent > 0, else 0)

  int depth() const { return static_cast<int>(widths.size()) - 1; }
  // Inputs are padded to a multiple of this and cropped back.
  int size_multiple() const { return 1 << depth(); }
  bool dense() const { return latent > 0; }
  // Rows (= columns) of the lowest level for the dense code's input: input_size / 2^depth, rounded up.
  int code_grid() const { return (input_size + size_multiple() - 1) / size_multiple(); }
};

// Throws UsageError naming the first invalid field.
void validate(const ArchSpec& spec);

// JSON text of the spec (includes "depth" for readers; checked against widths on parse).
std::string to_json(const ArchSpec& spec);
// Parses and validates; throws Error("arch spec", reason) on malformed JSON or bad fields.
// Missing fields take the defaults above.
ArchSpec arch_spec_from_json(const std::string& json_text);

// Preset specs by name, e.g. "unet-s" / "unet-m"; throws UsageError listing the known names.
ArchSpec preset_arch(const std::string& name, int channels);
std::vector<std::string> preset_arch_names();

}  // namespace bottleneck

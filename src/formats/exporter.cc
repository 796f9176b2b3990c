#include "formats/exporter.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "nets/layer_plan.h"
#include "util/atomic_file.h"
#include "bottleneck/version.h"
#include "util/error.h"
#include "runtime/runtime.h"
#include "util/text_format.h"

namespace bottleneck {
namespace {

// Writes the TorchScript source of one network from its layer plan (layer_plan.h), the one
// models.cc runs. Every layer expression it emits records the parameters it reads with their
// shapes, so the exporter can check them against the native module.
class SourceWriter {
 public:
  explicit SourceWriter(const ArchSpec& spec) : spec_(spec), plan_(make_plan(spec)) {}

  std::string source() {
    const int multiple = spec_.size_multiple();
    std::ostringstream s;
    s << "def _check(self, x: Tensor) -> None:\n"
      << "    assert x.dim() == 4 and x.size(1) == " << spec_.in_channels << ", \"model expects N x "
      << spec_.in_channels << " x H x W input\"\n";
    if (spec_.dense())
      s << "    assert x.size(2) == " << spec_.input_size << " and x.size(3) == " << spec_.input_size
        << ", \"this network's dense code takes " << spec_.input_size << " x " << spec_.input_size << " images only\"\n";
    s << "\n"
      // As pad_to_multiple in models.cc: reflection needs pad < side (it mirrors without
      // repeating the edge), tiny sides replicate; width first, then height.
      << "def _pad_end(self, x: Tensor, dim: int, amount: int) -> Tensor:\n"
      << "    if amount == 0:\n"
      << "        return x\n"
      << "    pad = [0, 0, 0, amount]\n"
      << "    if dim == 3:\n"
      << "        pad = [0, amount, 0, 0]\n"
      << "    if amount < x.size(dim):\n"
      << "        return torch.reflection_pad2d(x, pad)\n"
      << "    return torch.replication_pad2d(x, pad)\n\n"
      << "def _pad(self, x: Tensor) -> Tensor:\n"
      << "    pad_h = (" << multiple << " - x.size(2) % " << multiple << ") % " << multiple << "\n"
      << "    pad_w = (" << multiple << " - x.size(3) % " << multiple << ") % " << multiple << "\n"
      << "    return self._pad_end(self._pad_end(x, 3, pad_w), 2, pad_h)\n\n";

    s << "def encode(self, x: Tensor) -> Tensor:\n"
      << "    self._check(x)\n"
      << "    p = self._pad(x)\n"
      << "    f = p\n"
      << steps(plan_.encoder, /*skips=*/false)
      << "    return f\n\n";

    s << "def forward(self, x: Tensor) -> Tensor:\n"
      << "    self._check(x)\n"
      << "    p = self._pad(x)\n"
      << "    f = p\n"
      << steps(plan_.encoder, /*skips=*/true)
      << steps(plan_.decoder, /*skips=*/true);
    const PlanStep& h = plan_.head;
    const std::string head = conv("f", h.name, h.in, h.out, h.kernel, h.stride);
    switch (plan_.head_kind) {
      case Head::kResidual:
        s << "    y = p - " << head << "\n";
        break;
      case Head::kSigmoid:
        s << "    y = torch.sigmoid(" << head << ")\n";
        break;
      case Head::kLinear:
        s << "    y = " << head << "\n";
        break;
    }
    s << "    return y.narrow(2, 0, x.size(2)).narrow(3, 0, x.size(3))\n";
    if (decodes()) {
      // The inverse half, as models.cc's decode(): an encode() code back to an h x w output.
      s << "\ndef decode(self, code: Tensor, height: int, width: int) -> Tensor:\n"
        << "    f = code\n"
        << steps(plan_.decoder, /*skips=*/false) << "    y = " << head << "\n";
      if (plan_.head_kind == Head::kSigmoid) s << "    y = torch.sigmoid(y)\n";
      s << "    return y.narrow(2, 0, height).narrow(3, 0, width)\n";
    }
    return s.str();
  }

  // Whether the network's code is all its decoder reads (no skips) and its output is not the
  // input plus something: then the export has decode() too.
  bool decodes() const {
    if (plan_.head_kind == Head::kResidual) return false;
    for (const PlanStep& step : plan_.decoder)
      if (step.op == PlanStep::Op::kAddSkip) return false;
    return true;
  }

  // Flattened parameter name -> shape, for every parameter the source reads.
  const std::map<std::string, std::vector<int64_t>>& parameters() const { return parameters_; }

 private:
  // Statements for `list`, each reading and writing f; the skips are s0, s1, ... (encode()
  // needs none). An upsampling and the skip added to it are one statement.
  std::string steps(const std::vector<PlanStep>& list, bool skips) {
    std::ostringstream s;
    for (size_t i = 0; i < list.size(); ++i) {
      const PlanStep& step = list[i];
      switch (step.op) {
        case PlanStep::Op::kConv: {
          const std::string c = conv("f", step.name, step.in, step.out, step.kernel, step.stride);
          s << "    f = " << (step.activate ? act(c) : c) << "\n";
          break;
        }
        case PlanStep::Op::kUp: {
          const std::string up = upsample("f", step.name, step.in, step.out);
          if (i + 1 < list.size() && list[i + 1].op == PlanStep::Op::kAddSkip) {
            s << "    f = " << up << " + s" << list[++i].index << "\n";
          } else {
            s << "    f = " << (step.activate ? act(up) : up) << "\n";
          }
          break;
        }
        case PlanStep::Op::kSaveSkip:
          if (skips) s << "    s" << step.index << " = f\n";
          break;
        case PlanStep::Op::kAddSkip:
          s << "    f = f + s" << step.index << "\n";
          break;
        case PlanStep::Op::kToLatent:
          s << "    f = " << linear("f.flatten(1)", step.name, step.in, step.out) << "\n";
          break;
        case PlanStep::Op::kFromLatent: {
          const std::string l = linear("f", step.name, step.in, step.out);
          const int g = plan_.grid;
          s << "    f = " << (step.activate ? act(l) : l) << ".reshape([-1, " << step.out / (g * g) << ", " << g << ", "
            << g << "])\n";
          break;
        }
      }
    }
    return s.str();
  }

  // A k x k conv with padding k / 2 and a bias, as torch::nn::Conv2d runs it.
  std::string conv(const std::string& input, const std::string& name, int in, int out, int k,
                   int stride = 1) {
    record(name + "_weight", {out, in, k, k});
    record(name + "_bias", {out});
    const int pad = k / 2;
    return "torch.conv2d(" + input + ", self." + name + "_weight, self." + name + "_bias, [" +
           std::to_string(stride) + ", " + std::to_string(stride) + "], [" + std::to_string(pad) +
           ", " + std::to_string(pad) + "])";
  }

  // A linear layer on N x in rows (torch.linear is not TorchScript's; addmm is what it runs).
  std::string linear(const std::string& input, const std::string& name, int in, int out) {
    record(name + "_weight", {out, in});
    record(name + "_bias", {out});
    return "torch.addmm(self." + name + "_bias, " + input + ", self." + name + "_weight.t())";
  }

  // 2x upsampling: a 2x2 stride-2 transposed conv (computed as models.cc does), or a bilinear resize (align_corners false,
  // the call F::interpolate makes for scale factor 2) followed by a 3x3 conv.
  std::string upsample(const std::string& input, const std::string& name, int in, int out) {
    if (plan_.upsample == Upsample::kBilinear) {
      const std::string resized = "torch.upsample_bilinear2d(" + input + ", [" + input +
                                  ".size(2) * 2, " + input + ".size(3) * 2], False, 2.0, 2.0)";
      return conv(resized, name, in, out, 3);
    }
    record(name + "_weight", {in, out, 2, 2});
    record(name + "_bias", {out});
    // The same computation as models.cc: a 1x1 conv to 4x the channels and a pixel shuffle.
    return "torch.pixel_shuffle(torch.conv2d(" + input + ", self." + name + "_weight.permute([1, 2, 3, 0]).reshape([-1, " +
           std::to_string(in) + ", 1, 1]), torch.repeat_interleave(self." + name + "_bias, 4), [1, 1], [0, 0]), 2)";
  }

  std::string act(const std::string& x) const {
    switch (plan_.activation) {
      case Activation::kLeakyRelu:
        return "torch.leaky_relu(" + x + ", 0.01)";
      case Activation::kSilu:
        return "torch.silu(" + x + ")";
      case Activation::kRelu:
        break;
    }
    return "torch.relu(" + x + ")";
  }

  void record(const std::string& name, std::vector<int64_t> shape) {
    // forward() and encode() both read the encoder: the same name must mean the same shape.
    auto [it, inserted] = parameters_.emplace(name, shape);
    if (!inserted && it->second != shape)
      throw Error("exporter: parameter " + name + " used with shapes " + shape_text(it->second) +
                  " and " + shape_text(shape));
  }

  const ArchSpec& spec_;
  const LayerPlan plan_;
  std::map<std::string, std::vector<int64_t>> parameters_;
};

// Deterministic input of odd size (so padding and cropping run) that leaves the global RNG alone.
torch::Tensor probe_input(const ArchSpec& spec) {
  const int64_t h = spec.dense() ? spec.input_size : spec.size_multiple() + 3;
  const int64_t w = spec.dense() ? spec.input_size : 2 * spec.size_multiple() + 1;
  return torch::arange(spec.in_channels * h * w, torch::kFloat)
      .mul(0.6180339887)
      .frac()
      .reshape({1, spec.in_channels, h, w});
}

// The freshly written file must load and compute what the native network computes. The
// tolerance is far above float rounding (and TF32 convolutions on GPUs) and far below what any
// structural difference (a missing layer, wrong padding) produces.
void verify_export(const std::string& file, const std::string& path, AutoencoderImpl& native,
                   c10::Device device) {
  constexpr double kTolerance = 1e-3;
  torch::NoGradGuard no_grad;
  torch::jit::Module loaded;
  try {
    loaded = torch::jit::load(file, device);
  } catch (const std::exception& e) {
    throw Error(path, "the written file does not load back: " + first_line(e.what()));
  }
  const torch::Tensor x = probe_input(native.spec()).to(device);
  native.to(device);
  const torch::Tensor expected = native.forward(x);
  torch::Tensor got;
  try {
    got = loaded.forward({x}).toTensor();
  } catch (const std::exception& e) {
    throw Error(path, "the exported forward() fails: " + first_line(e.what()));
  }
  if (got.sizes() != expected.sizes())
    throw Error(path, "the exported forward() returns the wrong shape");
  const double diff = (got - expected).abs().max().item<double>();
  if (!(diff <= kTolerance))
    throw Error(path, "the exported forward() differs from the trained network by " +
                          std::to_string(diff) + " (exporter bug; please report)");
  if (loaded.find_method("decode")) {
    torch::Tensor decoded;
    try {
      const torch::Tensor code = loaded.get_method("encode")({x}).toTensor();
      decoded = loaded.get_method("decode")({code, x.size(2), x.size(3)}).toTensor();
    } catch (const std::exception& e) {
      throw Error(path, "the exported decode() fails: " + first_line(e.what()));
    }
    if (decoded.sizes() != expected.sizes() || !((decoded - expected).abs().max().item<double>() <= kTolerance))
      throw Error(path, "the exported decode(encode(x)) differs from forward(x) (exporter bug; please report)");
  }
}

// Whether `path` is a TorchScript file carrying our metadata (any failure means no).
bool is_export(const std::string& path) {
  try {
    torch::jit::ExtraFilesMap extra{{kTorchScriptMetadataFile, ""}};
    torch::jit::load(path, c10::Device(c10::kCPU), extra);
    return !extra[kTorchScriptMetadataFile].empty();
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

std::string flat_name(std::string name) {
  for (char& c : name)
    if (c == '.') c = '_';
  return name;
}

std::string torchscript_source(const ArchSpec& spec) {
  validate(spec);
  return SourceWriter(spec).source();
}

torch::jit::Module to_torchscript(const AutoencoderImpl& model, c10::Device device) {
  const ArchSpec& spec = model.spec();
  validate(spec);
  SourceWriter writer(spec);
  const std::string source = writer.source();
  const auto& expected = writer.parameters();

  if (!model.buffers().empty())
    throw Error("exporter: the network has buffers, which the exporter does not copy");
  // In the network's order (layer by layer), which is how the file lists them.
  std::vector<std::pair<std::string, torch::Tensor>> params;
  std::map<std::string, torch::Tensor> by_name;
  for (const auto& item : model.named_parameters()) {
    params.emplace_back(flat_name(item.key()), item.value());
    if (!by_name.emplace(params.back()).second)
      throw Error("exporter: two parameters of the network flatten to " + params.back().first);
  }
  for (const auto& [name, shape] : expected) {
    auto it = by_name.find(name);
    if (it == by_name.end())
      throw Error("exporter: the generated " + std::string(name_of(spec.kind)) + " uses " + name +
                  ", which the network does not have (models.cc and exporter.cc disagree)");
    if (it->second.sizes().vec() != shape)
      throw Error("exporter: " + name + " has shape " + shape_text(it->second.sizes().vec()) +
                  " in the network but " + shape_text(shape) + " in the generated " + name_of(spec.kind));
  }
  for (const auto& [name, tensor] : params)
    if (!expected.count(name))
      throw Error("exporter: the network has a parameter " + name + " that the generated " +
                  name_of(spec.kind) + " does not use (models.cc and exporter.cc disagree)");

  torch::jit::Module module(spec.kind == ArchKind::kUNet ? "__torch__.bottleneck.UNet"
                                                : "__torch__.bottleneck.ConvAE");
  // Python's nn.Module API (model.eval(), model.training) expects the attribute that scripted
  // Python modules carry; a module built in C++ has it only when registered.
  module.register_attribute("training", c10::BoolType::get(), false);
  for (const auto& [name, tensor] : params) {
    torch::Tensor copy =
        tensor.detach().to(device, torch::kFloat, /*non_blocking=*/false, /*copy=*/true).contiguous();
    module.register_parameter(name, copy, /*is_buffer=*/false);
  }
  try {
    module.define(source);
  } catch (const std::exception& e) {
    throw Error("exporter: generated TorchScript does not compile: " + first_line(e.what()));
  }
  return module;
}

std::string export_metadata_json(const CheckpointInfo& info) {
  nlohmann::ordered_json j;
  j["format"] = kTorchScriptFormat;
  j["format_version"] = kTorchScriptVersion;
  j["project_version"] = kVersion;
  j["torch_version"] = torch_version();
  j["arch"] = nlohmann::ordered_json::parse(to_json(info.arch));
  j["channels"] = info.arch.in_channels;
  j["noise"] = info.noise;
  std::string data;
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(info.config_json, nullptr, false);
  if (config.is_object() && config.contains("data") && config["data"].is_string())
    data = config["data"].get<std::string>();
  nlohmann::ordered_json training;
  training["data"] = data;
  training["iterations"] = info.iteration;
  training["best_val_psnr"] = json_number<nlohmann::ordered_json>(info.best_val_psnr);
  training["checkpoint_project_version"] = info.project_version;
  // The run's resolved options: what a task reads back beyond the network (reconstruct's
  // --resize: the size `score` and `encode` bring every image to).
  if (config.is_object()) training["config"] = config;
  j["training"] = training;
  return j.dump(2);
}

ModelInfo parse_export_metadata(const std::string& path, const std::string& json_text) {
  ModelInfo info;
  info.path = path;
  info.file_kind = "torchscript";
  try {
    const auto j = nlohmann::json::parse(json_text);
    if (j.at("format") != kTorchScriptFormat)
      throw Error(path, "not a Bottleneck export (format " + j.at("format").dump() + ")");
    info.format_version = j.at("format_version").get<int64_t>();
    if (info.format_version > kTorchScriptVersion || info.format_version < 1)
      throw Error(path, "exported model format version " + std::to_string(info.format_version) +
                            " is not one this build reads (1.." +
                            std::to_string(kTorchScriptVersion) + "); upgrade bottleneck");
    info.project_version = j.at("project_version").get<std::string>();
    info.arch = arch_spec_from_json(j.at("arch").dump());
    if (j.at("channels").get<int>() != info.arch.in_channels)
      throw Error(path, "damaged export metadata: channels " + j.at("channels").dump() +
                            " disagree with the arch");
    info.noise = j.at("noise").get<std::string>();
    const auto& training = j.at("training");
    info.train_data = training.at("data").get<std::string>();
    info.iteration = training.at("iterations").get<int64_t>();
    const auto& psnr = training.at("best_val_psnr");
    info.val_psnr = psnr.is_number() ? psnr.get<double>() : std::nan("");
  } catch (const Error& e) {
    if (e.path() == path) throw;
    throw Error(path, "damaged export metadata: " + e.reason());
  } catch (const std::exception& e) {
    throw Error(path, "damaged export metadata: " + first_line(e.what()));
  }
  return info;
}

ExportResult export_model(const ExportOptions& options) {
  if (options.checkpoint.empty()) throw UsageError("--checkpoint is required");
  if (options.output.empty()) throw UsageError("--output is required");
  refuse_output_over_input(options.output, {options.checkpoint}, "export");
  refuse_if_it_crashes_the_loader(options.checkpoint);
  LoadedCheckpoint loaded;
  try {
    loaded = load_checkpoint(options.checkpoint);
  } catch (const Error&) {
    if (is_export(options.checkpoint))
      throw Error(options.checkpoint, "is already an exported model; export reads training checkpoints (.ckpt)");
    throw;
  }
  const torch::jit::Module module = to_torchscript(*loaded.model, options.device);
  const std::string metadata = export_metadata_json(loaded.info);
  // Serialised in memory: a zip written to a file is rooted at the file's stem, here the
  // temporary's (".NAME.tmp-PID-N/"), so two exports of one checkpoint would differ. From a
  // stream the root is always "archive/" and the bytes are a function of the checkpoint.
  std::ostringstream bytes;
  try {
    module.save(bytes, {{kTorchScriptMetadataFile, metadata}});
  } catch (const std::exception& e) {
    throw Error(options.output, "cannot write the exported model: " + first_line(e.what()));
  }
  const std::string data = bytes.str();
  write_atomically(options.output, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.close();
    if (!out) throw Error(options.output, "cannot write the exported model");
    verify_export(tmp, options.output, *loaded.model, options.device);
  });
  ExportResult result;
  result.info = parse_export_metadata(options.output, metadata);
  result.parameters = parameter_count(*loaded.model);
  return result;
}

}  // namespace bottleneck

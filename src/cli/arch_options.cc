#include "cli/arch_options.h"

#include <sstream>

#include "util/error.h"

namespace bottleneck::cli {

void add_arch_options(cxxopts::Options& options, const std::string& default_arch) {
  options.add_options("Architecture")
      ("arch", "preset (unet-s, unet-m, unet-l, conv-ae) or kind (unet, conv-ae)",
       cxxopts::value<std::string>()->default_value(default_arch))
      ("channels", "image channels the model takes: 1 (gray) or 3 (colour)", cxxopts::value<int>()->default_value("1"))
      ("widths", "channels per level, comma-separated, e.g. 32,64,128", cxxopts::value<std::string>())
      ("convs", "3x3 convolutions per level", cxxopts::value<int>())
      ("bottleneck", "channels of the code at the lowest level (conv-ae without --latent: required)", cxxopts::value<int>())
      ("latent", "conv-ae: a dense code of this many numbers (linear layers from and to the lowest level, "
                 "which --bottleneck then squeezes first); fixes the input size", cxxopts::value<int>())
      ("input-size", "the side of the square images a --latent network takes (train: default --patch)",
       cxxopts::value<int>())
      ("activation", "relu, leaky_relu or silu", cxxopts::value<std::string>())
      ("head", "residual (predict the noise), sigmoid or linear", cxxopts::value<std::string>())
      ("upsample", "transposed or bilinear", cxxopts::value<std::string>());
}

namespace {
std::vector<int> parse_widths(const std::string& text) {
  std::vector<int> widths;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      int w = std::stoi(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
      widths.push_back(w);
    } catch (const std::exception&) {
      throw UsageError("--widths \"" + text + "\": expected comma-separated integers, e.g. 32,64,128");
    }
  }
  if (widths.empty()) throw UsageError("--widths is empty");
  return widths;
}
}  // namespace

bool arch_options_given(const cxxopts::ParseResult& r) {
  for (const char* name : {"arch", "channels", "widths", "convs", "bottleneck", "latent", "input-size", "activation",
                           "head", "upsample"})
    if (r.count(name)) return true;
  return false;
}

ArchSpec arch_from_options(const cxxopts::ParseResult& r, int default_input_size) {
  const std::string arch = r["arch"].as<std::string>();
  const int channels = r["channels"].as<int>();
  if (channels != 1 && channels != 3) throw UsageError("--channels must be 1 or 3");
  ArchSpec spec;
  if (arch == "unet" || arch == "conv-ae") {
    spec = preset_arch(arch == "unet" ? "unet-m" : "conv-ae", channels);
  } else {
    spec = preset_arch(arch, channels);
  }
  if (r.count("widths")) spec.widths = parse_widths(r["widths"].as<std::string>());
  if (r.count("convs")) spec.convs_per_level = r["convs"].as<int>();
  if (r.count("latent")) {
    spec.latent = r["latent"].as<int>();
    if (spec.latent < 1) throw UsageError("--latent must be >= 1, got " + std::to_string(spec.latent));
    spec.bottleneck_channels = 0;  // the dense layer is the bottleneck unless --bottleneck asks for a squeeze too
    spec.input_size = r.count("input-size") ? r["input-size"].as<int>() : default_input_size;
    if (spec.input_size < 1) throw UsageError("--latent needs --input-size (the side of the images it takes)");
  } else if (r.count("input-size")) {
    throw UsageError("--input-size is for a dense code: give --latent too");
  }
  if (r.count("bottleneck")) spec.bottleneck_channels = r["bottleneck"].as<int>();
  if (r.count("activation")) spec.activation = parse_activation(r["activation"].as<std::string>());
  if (r.count("head")) spec.head = parse_head(r["head"].as<std::string>());
  if (r.count("upsample")) spec.upsample = parse_upsample(r["upsample"].as<std::string>());
  validate(spec);
  return spec;
}

}  // namespace bottleneck::cli

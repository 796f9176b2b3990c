#include "cli/common_options.h"

namespace bottleneck::cli {

void add_inference_options(cxxopts::Options& options) {
  const TileOptions defaults;
  options.add_options("Inference")
      ("tile", "tile core side in pixels; 0 = whole images in one pass (default " + std::to_string(defaults.tile) + ")",
       cxxopts::value<int>())
      ("batch", "tiles or small images per forward pass (default " + std::to_string(defaults.batch) + ")",
       cxxopts::value<int>())
      ("precision", "fp32, or bf16: about 2x faster on CPUs with AVX512-BF16, slightly less exact (default fp32)",
       cxxopts::value<std::string>());
}

void read_inference_options(const cxxopts::ParseResult& r, const Context& ctx, TileOptions& tiling,
                            std::string& precision) {
  tiling.tile = get_or<int>(r, "tile", tiling.tile);
  tiling.batch = get_or<int>(r, "batch", tiling.batch);
  tiling.device = ctx.runtime.device;
  precision = get_or<std::string>(r, "precision", precision);
}

}  // namespace bottleneck::cli

#pragma once

#include <string>

#include <cxxopts.hpp>

#include "cli/command.h"
#include "inference/tiler.h"

namespace bottleneck::cli {

// How a command runs a model over images (denoise, eval, bench): --tile, --batch and
// --precision, declared and read here once so that the three commands cannot drift apart.
void add_inference_options(cxxopts::Options& options);

// Fills `tiling` (tile, batch, and the device of the global --device) and `precision` from
// the flags given; absent flags leave the defaults already in them.
void read_inference_options(const cxxopts::ParseResult& r, const Context& ctx, TileOptions& tiling,
                            std::string& precision);

}  // namespace bottleneck::cli

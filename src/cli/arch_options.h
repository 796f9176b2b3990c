#pragma once

#include <cxxopts.hpp>

#include "nets/arch_spec.h"

namespace bottleneck::cli {

// The options that describe a network, shared by every command that builds one.
void add_arch_options(cxxopts::Options& options, const std::string& default_arch);

// --arch names a preset (unet-s, unet-m, ...) or a kind (unet, conv-ae); the other flags
// override the preset's fields. A dense code (--latent) takes --input-size, else
// `default_input_size` (train: the patch side). Throws UsageError for bad values.
ArchSpec arch_from_options(const cxxopts::ParseResult& r, int default_input_size = 0);

// True when any architecture flag was given explicitly (so a spec from a config file or a run
// being resumed should be replaced by arch_from_options).
bool arch_options_given(const cxxopts::ParseResult& r);

}  // namespace bottleneck::cli

#pragma once

#include <string>
#include <vector>

namespace bottleneck {

// The denoisers that ship with bottleneck: models/denoise-gray.pt and models/denoise-color.pt,
// blind to the Gaussian noise level. The build copies them to BUILD/models next to the
// executable and `cmake --install` puts them in PREFIX/share/bottleneck/models, so both a build
// tree and an installed copy find them relative to the running executable.

// File name of the shipped denoiser for images with `channels` colour channels (1: gray, else
// colour), e.g. "denoise-gray.pt".
std::string shipped_model_name(int channels);

// Folders searched for shipped models, in order: EXE_DIR/models, EXE_DIR/../share/bottleneck/models.
std::vector<std::string> shipped_model_dirs();

// Path of the shipped denoiser for `channels`; throws Error naming every place searched when no
// folder has it.
std::string shipped_model(int channels);

}  // namespace bottleneck

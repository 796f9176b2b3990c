#pragma once

#include <string>
#include <vector>

namespace bottleneck {

// The denoisers that ship with bottleneck: models/denoise-gray.pt and models/denoise-color.pt,
// blind to the Gaussian noise level. The build copies them to BUILD/models next to the
// executable and `cmake --install` puts them in PREFIX/share/bottleneck/models, so both a build
// tree and an installed copy find them relative to the running executable.

// The shipped families, by the short names `--model` takes:
//   gaussian  denoise-gray.pt / denoise-color.pt: blind to white Gaussian noise (sigma 0-55)
//   photo     denoise-photo.pt for colour images: real camera noise (raw noise through a camera's
//             processing and JPEG); gray images use the gaussian gray model
// Without --model ("" here) colour images get the photo model when it is shipped (else the
// gaussian colour one) and gray images the gaussian gray one.
bool is_shipped_family(const std::string& name);

// What a --model value names: a shipped family when it is one of the names above and no file of
// that name exists (a file wins), else a file. Returns the family, or "" for a file (or "").
std::string shipped_family_of(const std::string& model_option);

// File name of the shipped denoiser of `family` ("", "gaussian" or "photo") for images with
// `channels` colour channels (1: gray, else colour), e.g. "denoise-gray.pt".
std::string shipped_model_name(int channels, const std::string& family = "");

// Folders searched for shipped models, in order: EXE_DIR/models, EXE_DIR/../share/bottleneck/models.
std::vector<std::string> shipped_model_dirs();

// Path of the shipped denoiser for `channels`; throws Error naming every place searched when no
// folder has it.
std::string shipped_model(int channels, const std::string& family = "");

}  // namespace bottleneck

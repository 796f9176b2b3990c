#pragma once

// Planning `bottleneck denoise`: which files are inputs and where each one's results go, and the
// refusals that keep the job from destroying anything before it starts (denoiser.h has the
// options). Folders are compared by device and inode, so a link, a bind mount or another
// spelling of an input folder is that folder.

#include <string>
#include <vector>

#include "denoise/denoiser.h"
#include "util/error.h"

namespace bottleneck {

struct DenoiseJob {
  std::string path;      // input file as found
  std::string relative;  // '/'-separated, relative to the input root
  std::string output;    // where the denoised image goes
  std::string compare;   // comparison image path, "" when not asked for
};

struct DenoisePlan {
  std::vector<DenoiseJob> jobs;  // in listing order
  std::vector<Error> unlisted;   // subfolders that could not be listed: a failure each
  std::vector<std::string> temporaries;  // hidden atomic-write temporaries in the input tree, left out
  // The folder every output must stay inside (links leading out are refused), or "" when the
  // output names one file: a lone input file with an OUTPUT that has an image extension and is
  // not an existing folder is written to that file (as cp and cwebp -o do).
  std::string output_root;
};

// Throws, before anything is written:
//  - UsageError when the output folder is the input folder or lies inside it (or inside a folder
//    of the input tree) and no --suffix is given;
//  - UsageError when an output would be an input (device and inode), naming both;
//  - UsageError when two inputs' results would be written to one file (a.png's comparison and
//    a.compare.png's output; a.jpg and a.png under --format png), naming both inputs;
//  - UsageError when a file already exists where the job would write and neither --overwrite
//    nor --skip-existing is given, naming it: files the job did not write are the user's;
//  - UsageError when the output names a file (see output_root) and --suffix is given, or
//    --format names another format than its extension;
//  - Error for a missing input, or one with no images.
// Results of an earlier run inside the input tree (NAME.SUFFIX.EXT, comparisons, temporaries,
// the output folder's contents) are not taken as inputs.
DenoisePlan plan_denoise(const DenoiseOptions& options);

}  // namespace bottleneck

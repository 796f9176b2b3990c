#pragma once

// The folder jobs behind `bottleneck compress` and `bottleneck decompress`: files or folder
// trees in, the tree mirrored under the output folder (or one output file), each result written
// atomically, never over an input. A bad file is reported as "FILE: reason" and the job goes on;
// the report counts it so that the exit code can say so.

#include <cstdint>
#include <string>
#include <vector>

#include "codec/compressor.h"
#include "image/image_io.h"
#include "util/log.h"

namespace bottleneck {

struct CompressOptions {
  std::vector<std::string> inputs;  // image files or folders (searched recursively); required
  std::string output;               // output folder (NAME.EXT -> NAME.bnc, tree mirrored), or for
                                    // one input file a FILE.bnc; required
  std::string model;                // codec model file (.bnm); "" = the shipped one
  CodecTarget target;               // quality (default 75), or a --bpp / --psnr search
  bool skip_existing = false;       // leave inputs whose output exists
  bool compare = false;             // also write NAME.compare.png beside each output: original |
                                    // ours | JPEG | WebP at the same file size (codec_compare.h)
  int64_t max_pixels = kDefaultMaxPixels;  // larger images fail (decompression bombs)
  bool progress_tty = false;        // redraw the progress line in place
};

struct DecompressOptions {
  std::vector<std::string> inputs;  // .bnc files or folders (searched recursively); required
  std::string output;               // output folder (NAME.bnc -> NAME.png), or for one input file
                                    // an image file whose extension picks the format; required
  std::string model;                // "" = per file, the model file whose id the file names, among
                                    // the .bnm files in model_dirs (codec_model_files)
  std::vector<std::string> model_dirs;  // {} = shipped_model_dirs() (BUILD/models, share/...)
  bool skip_existing = false;
  bool progress_tty = false;
};

struct CodecJobReport {
  int64_t done = 0;
  int64_t skipped = 0;               // outputs existed (skip_existing)
  int64_t failed = 0;
  std::vector<std::string> failures; // "FILE: reason", unlisted folders first
  double megapixels = 0;             // of the files done
  double seconds = 0;                // wall time, model loading excluded
  uint64_t compressed_bytes = 0;     // .bnc bytes written (compress) or read (decompress)
  double mean_bpp = 0, mean_psnr = 0;  // compress: over the files done (NaN when none)
};

// Throw UsageError for bad options or layouts (an output over an input, two inputs onto one
// output), Error for an unreadable model or nothing to do; per-file problems are in the report.
CodecJobReport compress_files(const CompressOptions& options, const Logger& log);
CodecJobReport decompress_files(const DecompressOptions& options, const Logger& log);

// "compressed 12, skipped 0, failed 1 (4.7 MP in 3.2 s, 0.61 bpp, 27.10 dB)"
std::string summary_line(const CodecJobReport& report, const std::string& verb);

}  // namespace bottleneck

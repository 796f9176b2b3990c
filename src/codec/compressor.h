#pragma once

// One image in, one .bnc file out, and back: the learned codec as users run it (CompressAI's
// compress/decompress contract on a frozen model file, codec/codec_file.h).
//
// Coding: the image (gray replicated to the model's colour channels, 16-bit samples rounded to
// 8 bits) is padded to a multiple of 16, analysed once (in tiles, codec/codec_tiles.h), multiplied by the gain vector of its
// quality, rounded around the prior's medians and rANS-coded channel by channel with the frozen
// tables. The decoder reads the same integers back, so the latent symbols are bit-identical on
// every machine and thread count by construction; only the float synthesis differs across
// instruction sets, by rounding (at most one 8-bit level, tested).
//
// Quality: 1..100 maps linearly onto the trained rates (1 = the lowest lambda, 100 = the
// highest), and between two trained rates the gains are interpolated geometrically (Cui et al.
// 2021). A "step" prior (codec_model.h) has tables for the half steps of quality (1, 1.5, ..,
// 100), so a quality codes at the nearest of them, and the file records that; a "gained" prior codes at any quality. The file's quality field is what the
// decoder uses to pick the tables and the (inverse) gains, as float32, and the encoder codes with
// exactly that float.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>
#include <torch/torch.h>

#include "codec/codec_file.h"
#include "codec/codec_tiles.h"
#include "codec/container.h"

namespace bottleneck {

inline constexpr double kMinQuality = 1, kMaxQuality = 100;
inline constexpr double kDefaultQuality = 75;

// What the encoder aims for; at most one is set (none: quality kDefaultQuality).
struct CodecTarget {
  std::optional<double> quality;  // 1..100, continuous
  std::optional<double> bpp;      // > 0: the highest quality whose file is at most this many bits
                                  // per pixel, headers included (cwebp -size)
  std::optional<double> psnr;     // > 0 dB: the lowest quality whose decoded image reaches this
                                  // PSNR against the (8-bit) input (cwebp -psnr)
};

// Throws UsageError naming the option (--quality, --bpp, --psnr) when out of range or when
// more than one is set.
void validate(const CodecTarget& target);

// Position among the trained rates (0 .. rates - 1) of a quality.
double rate_position(double quality, int rates);

struct CompressedImage {
  std::vector<uint8_t> bytes;  // the .bnc file
  float quality = 0;           // as stored in the file (the nearest frozen step's)
  double bpp = 0;              // bytes * 8 / pixels
  double psnr = 0;             // dB of the decoded 8-bit image against the 8-bit input
  bool target_reached = true;  // false when a --bpp / --psnr target lies outside quality 1..100
                               // (the nearest end was used)
  int encodings = 0;           // qualities tried (1 without a search)
  cv::Mat decoded;             // the image's channels (gray or BGR), 8-bit: what decompress will
                               // give (for a 16-bit original, before scaling to 16 bits)
};

// `image`: gray or BGR as OpenCV decodes (CV_8U or CV_16U), any size up to kMaxImageSide a side.
// No alpha: callers refuse it (the file has no place for it). 16-bit samples are coded at 8 bits.
// `tile`: core side of the transforms' tiles in pixels (codec_tiles.h); bounds memory, not the
// result (latents to float rounding, pixels to one level).
CompressedImage compress_image(LoadedCodec& codec, const cv::Mat& image, const CodecTarget& target,
                               int tile = kDefaultCodecTile);

struct DecompressedImage {
  ContainerHeader header;
  cv::Mat image;          // gray or BGR like the original, at header.bit_depth
  torch::Tensor symbols;  // M x h x w int32: the latent symbols as decoded
  torch::Tensor pixels;   // C x H x W float in [0, 1] before rounding to samples (keep_pixels),
                          // else undefined
};

struct DecodeOptions {
  int tile = kDefaultCodecTile;  // core side of the synthesis tiles in pixels (codec_tiles.h)
  bool keep_pixels = false;      // also return `pixels`: 12 bytes a colour pixel (0.6 GB for 48 MP)
};

// Decodes a .bnc file's bytes. Error(kCorrupt / kUnsupported, path, one line) for a damaged or
// newer file; Error(kInvalidData, path, "compressed with model <hex>, ...") for another model's.
DecompressedImage decompress_image(LoadedCodec& codec, const uint8_t* data, size_t size, const std::string& path,
                                   const DecodeOptions& options = {});

// The model's own quantised reconstruction of x (C x H x W in [0, 1], C = the image's
// channels), rounded test-time latents through CodecModel::forward, clamped: what
// decompress_image(compress_image(x)) must equal before rounding to samples.
torch::Tensor quantised_reconstruction(LoadedCodec& codec, const torch::Tensor& x, float quality);

// Reads and verifies a .bnc file (header, checksums): `bottleneck info`.
ParsedContainer read_compressed_file(const std::string& path);
// Whether the file starts with the container's magic; false for unreadable files.
bool is_compressed_file(const std::string& path);

}  // namespace bottleneck

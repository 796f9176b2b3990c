#pragma once

// The compressed image file: a header saying what was compressed and with which model, the
// latent streams' shapes and sizes, the streams' bytes (rANS, codec/rans.h), and checksums.
// Unlike CompressAI's bitstream it identifies itself (magic), can evolve (version), names the
// model it needs (model id) and detects damage (CRC32s). Every byte is in docs/formats.md.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bottleneck {

// "\x89BNC\r\n\x1a\n", PNG's construction with our letters: the high first byte catches 7-bit
// transfers, CR LF and LF catch line-ending conversion in either direction, ^Z stops `type` on
// Windows, and "BNC" (BottleNeck Codec) can be read in a hex dump. Checked unused: PNG, MNG and
// JNG use 0x89/0x8a/0x8b with PNG/MNG/JNG, and `file` (libmagic 5.44) calls these bytes "data".
constexpr std::array<uint8_t, 8> kContainerMagic = {0x89, 'B', 'N', 'C', '\r', '\n', 0x1a, '\n'};

// Bumped on any change a version-1 reader would misread; readers refuse newer versions.
constexpr uint16_t kContainerFormatVersion = 1;

// ".bnc" (BottleNeck Codec). Checked free: absent from freedesktop's shared-mime-info and
// Debian's /etc/mime.types, and file-extension directories list no format for it (unlike .bnk,
// a Wwise sound bank, and .bcn, business-card and configuration files).
constexpr char kContainerExtension[] = ".bnc";

// Limits a reader enforces, so that a damaged header cannot make a caller allocate or loop
// without bound. 2^18 pixels a side is 16x the widest camera sensors. 2^32 elements a stream
// is CompressAI's 192-channel, 1/16-resolution latent (0.75 values a pixel) of a 5.7-gigapixel
// image; larger images would have to be compressed in tiles.
constexpr uint32_t kMaxImageSide = uint32_t{1} << 18;
constexpr uint32_t kMaxStreams = 8;  // CompressAI's models use 1 (factorized) or 2 (hyperprior)
constexpr uint32_t kMaxLatentChannels = 65535;
constexpr uint64_t kMaxLatentElements = uint64_t{1} << 32;

using ModelId = std::array<uint8_t, 16>;

// One entropy-coded latent tensor: channels x height x width quantised values.
struct LatentShape {
  uint32_t channels = 0;  // 1..kMaxLatentChannels
  uint32_t height = 0;    // 1..kMaxImageSide
  uint32_t width = 0;     // 1..kMaxImageSide; channels * height * width <= kMaxLatentElements
  bool operator==(const LatentShape& o) const {
    return channels == o.channels && height == o.height && width == o.width;
  }
};

struct ContainerHeader {
  uint32_t width = 0;      // the original image's size in pixels, 1..kMaxImageSide each: the
  uint32_t height = 0;     // decoder crops the model's padded output back to it
  uint8_t channels = 1;    // 1 (gray) or 3 (RGB)
  uint8_t bit_depth = 8;   // 8 or 16: the original's sample depth, so decode writes the same kind
  float quality = 0;       // what the encoder was asked for (a model's quality level or lambda),
                           // finite and >= 0; informational: decoding depends on the model only
  ModelId model_id{};      // identifies the model's weights and CDF tables; computed and checked
                           // by the caller (check_model_id), opaque here
  std::vector<LatentShape> streams;  // 1..kMaxStreams, in the order the model decodes them
};

struct ParsedContainer {
  uint16_t format_version = 0;                // of the file, <= kContainerFormatVersion
  ContainerHeader header;
  std::vector<std::vector<uint8_t>> payloads;  // one per header.streams entry
};

// The file's bytes. Throws Error(kInvalidData) for a header outside the limits above or a
// payload count different from the stream count (or a payload over 4 GiB).
std::vector<uint8_t> write_container(const ContainerHeader& header, const std::vector<std::vector<uint8_t>>& payloads);

// Parses and verifies a whole file. Throws Error(kCorrupt, path, reason) with one line for
// anything damaged: "not a Bottleneck file (bad magic)", "truncated: ...", "header checksum
// mismatch", "checksum mismatch", a field outside its range, bytes after the end; and
// Error(kUnsupported, path, "format version N is newer than this build reads (M)").
ParsedContainer read_container(const uint8_t* data, size_t size, const std::string& path);

// Whether the bytes start like a container (the magic), to tell files apart by content.
bool is_container(const uint8_t* data, size_t size);

// 32 lowercase hex digits.
std::string model_id_hex(const ModelId& id);

// Throws Error(kInvalidData, path, "compressed with model <hex>, not with this model (<hex>)")
// when the file needs another model.
void check_model_id(const ParsedContainer& file, const ModelId& model, const std::string& path);

// Whether path ends in kContainerExtension, in any letter case.
bool has_container_extension(const std::string& path);

// image_path with its extension replaced by (or, without one, extended with) kContainerExtension:
// "dir/photo.png" -> "dir/photo.bnc". Dots in directory names are not extensions.
std::string container_path_for(const std::string& image_path);

}  // namespace bottleneck

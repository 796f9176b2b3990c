#include "codec/container.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "util/error.h"

namespace bottleneck {
namespace {

static_assert(std::numeric_limits<float>::is_iec559 && sizeof(float) == 4, "quality is stored as IEEE-754 binary32");

// Offsets of the version-1 layout (docs/formats.md).
constexpr size_t kVersionAt = 8, kChannelsAt = 10, kBitDepthAt = 11, kWidthAt = 12, kHeightAt = 16,
                 kQualityAt = 20, kModelIdAt = 24, kStreamCountAt = 40, kStreamsAt = 44;
constexpr size_t kStreamEntryBytes = 16;  // channels, height, width, payload bytes: uint32 each
constexpr size_t kCrcBytes = 4;
constexpr size_t kSmallestHeader = kStreamsAt + kStreamEntryBytes + kCrcBytes;  // one stream

[[noreturn]] void corrupt(const std::string& path, const std::string& reason) {
  throw Error(ErrorKind::kCorrupt, path, reason);
}

uint32_t crc_of(const uint8_t* data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib's crc32 takes a 32-bit length.
  for (size_t done = 0; done < size;) {
    const size_t chunk = std::min<size_t>(size - done, size_t{1} << 30);
    crc = crc32(crc, data + done, static_cast<uInt>(chunk));
    done += chunk;
  }
  return static_cast<uint32_t>(crc);
}

uint32_t load32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

void store(uint64_t v, size_t bytes, std::vector<uint8_t>& out) {
  for (size_t i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

std::string range_problem(const std::string& what, uint64_t v, uint64_t lo, uint64_t hi) {
  if (v >= lo && v <= hi) return "";
  return what + " " + std::to_string(v) + " outside " + std::to_string(lo) + ".." + std::to_string(hi);
}

// What is wrong with a header ("" if nothing): one rule for the writer (a caller's bug) and the
// reader (a damaged or hostile file).
std::string header_problem(const ContainerHeader& h) {
  for (const std::string& p : {range_problem("image width", h.width, 1, kMaxImageSide),
                               range_problem("image height", h.height, 1, kMaxImageSide),
                               range_problem("stream count", h.streams.size(), 1, kMaxStreams)})
    if (!p.empty()) return p;
  if (h.channels != 1 && h.channels != 3) return "channels " + std::to_string(h.channels) + ", not 1 or 3";
  if (h.bit_depth != 8 && h.bit_depth != 16) return "bit depth " + std::to_string(h.bit_depth) + ", not 8 or 16";
  if (!std::isfinite(h.quality) || h.quality < 0) return "quality " + std::to_string(h.quality) + " is not finite and >= 0";
  for (size_t i = 0; i < h.streams.size(); ++i) {
    const LatentShape& s = h.streams[i];
    const std::string name = "stream " + std::to_string(i);
    for (const std::string& p : {range_problem(name + " channels", s.channels, 1, kMaxLatentChannels),
                                 range_problem(name + " height", s.height, 1, kMaxImageSide),
                                 range_problem(name + " width", s.width, 1, kMaxImageSide)})
      if (!p.empty()) return p;
    const uint64_t elements = uint64_t{s.channels} * s.height * s.width;
    if (elements > kMaxLatentElements)
      return name + " has " + std::to_string(elements) + " elements, more than " + std::to_string(kMaxLatentElements);
  }
  return "";
}

}  // namespace

std::vector<uint8_t> write_container(const ContainerHeader& header, const std::vector<std::vector<uint8_t>>& payloads) {
  const std::string problem = header_problem(header);
  if (!problem.empty()) throw Error(ErrorKind::kInvalidData, "", "cannot write container: " + problem);
  if (payloads.size() != header.streams.size())
    throw Error(ErrorKind::kInvalidData, "",
                "cannot write container: " + std::to_string(payloads.size()) + " payloads for " +
                    std::to_string(header.streams.size()) + " streams");
  size_t total = 0;
  for (const std::vector<uint8_t>& p : payloads) {
    if (p.size() > UINT32_MAX) throw Error(ErrorKind::kInvalidData, "", "cannot write container: a payload over 4 GiB");
    total += p.size();
  }

  std::vector<uint8_t> out;
  out.reserve(kStreamsAt + kStreamEntryBytes * payloads.size() + 2 * kCrcBytes + total);
  out.insert(out.end(), kContainerMagic.begin(), kContainerMagic.end());
  store(kContainerFormatVersion, 2, out);
  store(header.channels, 1, out);
  store(header.bit_depth, 1, out);
  store(header.width, 4, out);
  store(header.height, 4, out);
  uint32_t quality_bits;
  std::memcpy(&quality_bits, &header.quality, 4);
  store(quality_bits, 4, out);
  out.insert(out.end(), header.model_id.begin(), header.model_id.end());
  store(header.streams.size(), 4, out);
  for (size_t i = 0; i < header.streams.size(); ++i) {
    const LatentShape& s = header.streams[i];
    store(s.channels, 4, out);
    store(s.height, 4, out);
    store(s.width, 4, out);
    store(payloads[i].size(), 4, out);
  }
  store(crc_of(out.data(), out.size()), 4, out);
  for (const std::vector<uint8_t>& p : payloads) out.insert(out.end(), p.begin(), p.end());
  store(crc_of(out.data(), out.size()), 4, out);
  return out;
}

ParsedContainer read_container(const uint8_t* data, size_t size, const std::string& path) {
  const size_t magic_bytes = std::min(size, kContainerMagic.size());
  if (size == 0) corrupt(path, "empty file");
  if (std::memcmp(data, kContainerMagic.data(), magic_bytes) != 0) corrupt(path, "not a Bottleneck file (bad magic)");
  // Before the count is known, a truncated header is reported against the smallest one.
  const auto truncated_header = [&] {
    corrupt(path, "truncated: " + std::to_string(size) + " bytes, the header alone needs at least " +
                      std::to_string(kSmallestHeader));
  };
  if (size < kChannelsAt) truncated_header();

  // The version comes before anything else: a newer writer may have changed all that follows.
  ParsedContainer file;
  file.format_version = static_cast<uint16_t>(data[kVersionAt] | data[kVersionAt + 1] << 8);
  if (file.format_version == 0) corrupt(path, "format version 0 is invalid");
  if (file.format_version > kContainerFormatVersion)
    throw Error(ErrorKind::kUnsupported, path,
                "format version " + std::to_string(file.format_version) + " is newer than this build reads (" +
                    std::to_string(kContainerFormatVersion) + ")");

  if (size < kStreamsAt) truncated_header();

  // The count is needed to find the header checksum, so it is bounded before it is verified.
  const uint32_t count = load32(data + kStreamCountAt);
  const std::string count_problem = range_problem("stream count", count, 1, kMaxStreams);
  if (!count_problem.empty()) corrupt(path, count_problem + " (damaged header)");
  const size_t crc_at = kStreamsAt + kStreamEntryBytes * count;
  const size_t header_bytes = crc_at + kCrcBytes;
  if (size < header_bytes)
    corrupt(path, "truncated: " + std::to_string(size) + " bytes, the header of " + std::to_string(count) +
                      " streams needs " + std::to_string(header_bytes));
  if (crc_of(data, crc_at) != load32(data + crc_at)) corrupt(path, "header checksum mismatch");

  ContainerHeader& h = file.header;
  h.channels = data[kChannelsAt];
  h.bit_depth = data[kBitDepthAt];
  h.width = load32(data + kWidthAt);
  h.height = load32(data + kHeightAt);
  const uint32_t quality_bits = load32(data + kQualityAt);
  std::memcpy(&h.quality, &quality_bits, 4);
  std::memcpy(h.model_id.data(), data + kModelIdAt, h.model_id.size());
  std::vector<uint32_t> payload_bytes(count);
  uint64_t total = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* e = data + kStreamsAt + kStreamEntryBytes * i;
    h.streams.push_back(LatentShape{load32(e), load32(e + 4), load32(e + 8)});
    payload_bytes[i] = load32(e + 12);
    total += payload_bytes[i];
  }
  const std::string problem = header_problem(h);
  if (!problem.empty()) corrupt(path, problem);

  const size_t remain = size - header_bytes;
  if (remain < total + kCrcBytes)
    corrupt(path, "truncated: header says " + std::to_string(total) + " payload bytes and a 4-byte checksum follow, " +
                      std::to_string(remain) + " bytes remain");
  if (remain > total + kCrcBytes)
    corrupt(path, std::to_string(remain - total - kCrcBytes) + " unexpected bytes after the checksum");
  if (crc_of(data, size - kCrcBytes) != load32(data + size - kCrcBytes)) corrupt(path, "checksum mismatch");

  const uint8_t* p = data + header_bytes;
  for (uint32_t n : payload_bytes) {
    file.payloads.emplace_back(p, p + n);
    p += n;
  }
  return file;
}

bool is_container(const uint8_t* data, size_t size) {
  return size >= kContainerMagic.size() && std::memcmp(data, kContainerMagic.data(), kContainerMagic.size()) == 0;
}

std::string model_id_hex(const ModelId& id) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (uint8_t b : id) {
    hex += kDigits[b >> 4];
    hex += kDigits[b & 15];
  }
  return hex;
}

void check_model_id(const ParsedContainer& file, const ModelId& model, const std::string& path) {
  if (file.header.model_id != model)
    throw Error(ErrorKind::kInvalidData, path,
                "compressed with model " + model_id_hex(file.header.model_id) + ", not with this model (" +
                    model_id_hex(model) + ")");
}

bool has_container_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == kContainerExtension;
}

std::string container_path_for(const std::string& image_path) {
  return std::filesystem::path(image_path).replace_extension(kContainerExtension).string();
}

}  // namespace bottleneck

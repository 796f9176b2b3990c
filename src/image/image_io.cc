#include "image/image_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <climits>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "util/atomic_file.h"
#include "util/error.h"
#include "util/errno_text.h"

// Decisions this file makes beyond the header's contract:
//  - Samples: CV_8U and CV_16U files keep their depth (no 16 -> 8 bit loss). Float files (CV_32F,
//    and CV_64F/CV_16F converted to CV_32F) are taken as already normalised to [0,1], the
//    convention of float TIFF/EXR/PFM; values outside are clamped and NaN becomes 0. Signed
//    integer samples (CV_8S, CV_16S, CV_32S) have no agreed mapping to [0,1] and are refused.
//  - Channels: 1 = gray, 2 = gray + alpha, 3 = BGR, 4 = BGRA. OpenCV decodes a gray+alpha PNG as
//    BGRA with B = G = R, so such a file loads as colour with alpha.
//  - Alpha is kept exactly as decoded (a float file's alpha stays CV_32F). save_image converts
//    it to the written depth: 8 -> 16 bit multiplies by 257 (255 -> 65535 exactly), 16 -> 8 bit
//    divides by 257 with rounding, float scales by 255 or 65535 with rounding and saturation.
//  - Writing: PNG and PNM store 8 or 16 bits (float is written as 16 bits), TIFF stores 8, 16
//    or 32-bit float; JPEG, BMP and WebP store 8 bits. Alpha is written to PNG, TIFF, WebP and
//    BMP (OpenCV's BMP writer would store the fourth byte in a header that says it is unused, so
//    readers, OpenCV included, ignore it: BGRA goes through our own V4-header writer). JPEG and
//    PNM cannot hold alpha: an opaque one is dropped, any other is refused.
//  - Whole files only: OpenCV 4.6 decodes the first page of a multi-page TIFF and the first
//    frame of an animated PNG or WebP, and drops the alpha of a gray + alpha TIFF. Those are
//    refused from the header (pages and frames are counted there) rather than half-read; a
//    PNG's tRNS colour key, which OpenCV ignores for gray and RGB, becomes an alpha plane.
//  - Only PNG, JPEG, BMP, TIFF, WebP and PNM are decoded, and only when their header gives the
//    size: OpenCV recognises more formats by signature (JPEG 2000, OpenEXR, DICOM, Radiance HDR,
//    ...) whose size we do not read, so a bomb in one of them would allocate before any check.
//  - list_images follows symbolic links to files, not to directories (no cycles). A dangling
//    link with an image extension is listed, so loading it reports "no such file" instead of
//    the file silently vanishing from a data set.

namespace bottleneck {
namespace fs = std::filesystem;

namespace {

std::string lower_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  if (!ext.empty() && ext[0] == '.') ext.erase(0, 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

std::string errno_reason(int e) {
  switch (e) {
    case EACCES:
    case EPERM: return "permission denied";
    case ENOENT: return "no such file or directory";
    case ENOSPC: return "no space left on device";
    case EISDIR: return "is a directory";
    case ENOTDIR: return "a component of the path is not a directory";
    case EROFS: return "read-only file system";
    case ENAMETOOLONG: return "path too long for the system (over " + std::to_string(PATH_MAX) + " characters)";
    default:
      return errno_text(e);
  }
}

std::vector<uchar> read_image_bytes(const std::string& path) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) throw Error(path, errno_reason(ec.value()));
  if (!fs::exists(st)) {
    if (fs::is_symlink(fs::symlink_status(path, ec))) throw Error(path, "no such file (dangling symbolic link)");
    throw Error(path, "no such file");
  }
  if (fs::is_directory(st)) throw Error(path, "is a directory");
  if (!fs::is_regular_file(st)) throw Error(path, "not a regular file");
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error(path, errno_reason(errno));
  std::vector<uchar> data;
  uchar chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) data.insert(data.end(), chunk, chunk + n);
  bool failed = std::ferror(f) != 0;
  int err = errno;
  std::fclose(f);
  if (failed) throw Error(path, "read error: " + errno_reason(err));
  if (data.empty()) throw Error(path, "empty file");
  return data;
}

uint32_t be32(const uchar* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}
uint32_t be16(const uchar* p) { return (uint32_t(p[0]) << 8) | p[1]; }
uint32_t le32(const uchar* p) {
  return (uint32_t(p[3]) << 24) | (uint32_t(p[2]) << 16) | (uint32_t(p[1]) << 8) | p[0];
}
uint32_t le16(const uchar* p) { return (uint32_t(p[1]) << 8) | p[0]; }

// What the first bytes of a file say: the format (empty if not one we sniff) and, where the
// header gives it cheaply, the size, so a decompression bomb is refused before decoding.
struct Sniffed {
  std::string format;
  int64_t width = -1;
  int64_t height = -1;
  size_t jpeg_scan = 0;  // JPEG: offset of the first start-of-scan marker, 0 if not found
  int jpeg_precision = 0;  // JPEG: bits per sample in the frame header (8; 12 or 16 where extended)
  int jpeg_sof = 0;        // JPEG: the frame marker's low byte (0xC0 baseline, 0xC2 progressive, ...)
  int64_t images = 1;    // TIFF pages (IFDs), APNG or WebP animation frames
  int tiff_samples = 0;  // TIFF SamplesPerPixel (0 if not given)
  int tiff_extra = 0;    // TIFF ExtraSamples count (alpha or other planes beyond the colour)
  int png_bit_depth = 0, png_color_type = -1;
  std::vector<uint32_t> png_key;  // tRNS colour key of a gray (1 value) or RGB (3) PNG, else empty
};

void sniff_jpeg(const std::vector<uchar>& d, Sniffed& s) {
  size_t i = 2;
  while (i + 4 <= d.size()) {
    if (d[i] != 0xFF) return;  // not at a marker: corrupt, let the decoder say so
    while (i < d.size() && d[i] == 0xFF) ++i;
    if (i + 3 > d.size()) return;
    uchar m = d[i++];
    if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;  // no length field
    if (m == 0xDA) {
      s.jpeg_scan = i;
      return;
    }
    uint32_t len = be16(&d[i]);
    bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof && i + 7 <= d.size()) {
      s.jpeg_sof = m;
      s.jpeg_precision = d[i + 2];
      s.height = be16(&d[i + 3]);
      s.width = be16(&d[i + 5]);
    }
    i += len;
  }
}

void sniff_tiff(const std::vector<uchar>& d, Sniffed& s) {
  bool le = d[0] == 'I';
  auto u16 = [&](size_t o) { return le ? le16(&d[o]) : be16(&d[o]); };
  auto u32 = [&](size_t o) { return le ? le32(&d[o]) : be32(&d[o]); };
  size_t ifd = u32(4);
  if (ifd + 2 > d.size()) return;
  size_t count = u16(ifd);
  for (size_t k = 0; k < count && ifd + 2 + 12 * (k + 1) <= d.size(); ++k) {
    size_t e = ifd + 2 + 12 * k;
    uint32_t tag = u16(e), type = u16(e + 2);
    if (tag == 277 && type == 3) s.tiff_samples = static_cast<int>(u16(e + 8));
    if (tag == 338) s.tiff_extra = static_cast<int>(std::min<uint32_t>(u32(e + 4), 1 << 16));
    if (tag != 256 && tag != 257) continue;
    int64_t v = type == 3 ? u16(e + 8) : type == 4 ? u32(e + 8) : -1;
    (tag == 256 ? s.width : s.height) = v;
  }
  // Pages: the chain of next-IFD offsets, each offset seen once (a crafted loop ends there).
  std::set<size_t> seen{ifd};
  for (size_t next = ifd + 2 + 12 * count; next + 4 <= d.size();) {
    const size_t at = u32(next);
    if (at == 0 || at + 2 > d.size() || !seen.insert(at).second) break;
    ++s.images;
    next = at + 2 + 12 * size_t(u16(at));
  }
}

// The chunks before the image data: bit depth and colour type, the tRNS colour key (gray or
// RGB only: a palette's tRNS is applied by OpenCV) and the APNG frame count (acTL).
void sniff_png(const std::vector<uchar>& d, Sniffed& s) {
  for (size_t at = 8; at + 8 <= d.size();) {
    const size_t length = be32(&d[at]);
    const std::string type(reinterpret_cast<const char*>(&d[at + 4]), 4);
    const size_t data = at + 8;
    if (type == "IDAT" || type == "IEND" || length > d.size() - data) return;
    if (type == "IHDR" && length >= 13) {
      s.png_bit_depth = d[data + 8];
      s.png_color_type = d[data + 9];
    } else if (type == "acTL" && length >= 8) {
      s.images = be32(&d[data]);
    } else if (type == "tRNS" && (s.png_color_type == 0 || s.png_color_type == 2)) {
      const size_t values = s.png_color_type == 0 ? 1 : 3;
      if (length >= 2 * values)
        for (size_t k = 0; k < values; ++k) s.png_key.push_back(be16(&d[data + 2 * k]));
    }
    at = data + length + 4;  // + CRC
  }
}

// Frames of an animated WebP (VP8X with the animation flag): its ANMF chunks.
void sniff_webp_frames(const std::vector<uchar>& d, Sniffed& s) {
  if ((d[20] & 0x02) == 0) return;
  int64_t frames = 0;
  for (size_t at = 12; at + 8 <= d.size();) {
    const size_t size = le32(&d[at + 4]);
    if (std::memcmp(&d[at], "ANMF", 4) == 0) ++frames;
    if (size > d.size() - at - 8) break;
    at += 8 + size + (size & 1);
  }
  s.images = std::max<int64_t>(frames, 1);
}

void sniff_pnm(const std::vector<uchar>& d, Sniffed& s) {
  size_t i = 2;
  int64_t values[2] = {-1, -1};
  for (int64_t& v : values) {
    while (i < d.size() && (std::isspace(d[i]) || d[i] == '#')) {
      if (d[i] == '#')
        while (i < d.size() && d[i] != '\n') ++i;
      else
        ++i;
    }
    if (i >= d.size() || !std::isdigit(d[i])) return;
    v = 0;
    while (i < d.size() && std::isdigit(d[i]) && v < (int64_t(1) << 31)) v = v * 10 + (d[i++] - '0');
  }
  s.width = values[0];
  s.height = values[1];
}

Sniffed sniff(const std::vector<uchar>& d) {
  Sniffed s;
  auto starts = [&](const char* magic, size_t n, size_t at = 0) {
    return d.size() >= at + n && std::memcmp(d.data() + at, magic, n) == 0;
  };
  if (starts("\x89PNG\r\n\x1a\n", 8)) {
    s.format = "PNG";
    if (d.size() >= 24 && starts("IHDR", 4, 12)) {
      s.width = be32(&d[16]);
      s.height = be32(&d[20]);
    }
    sniff_png(d, s);
  } else if (starts("\xFF\xD8\xFF", 3)) {
    s.format = "JPEG";
    sniff_jpeg(d, s);
  } else if (starts("BM", 2) && d.size() >= 26) {
    s.format = "BMP";
    uint32_t dib = le32(&d[14]);
    if (dib >= 40) {
      s.width = std::abs(int64_t(int32_t(le32(&d[18]))));
      s.height = std::abs(int64_t(int32_t(le32(&d[22]))));
    } else if (dib == 12) {
      s.width = le16(&d[18]);
      s.height = le16(&d[20]);
    }
  } else if ((starts("II*\0", 4) || starts("MM\0*", 4)) && d.size() >= 8) {
    s.format = "TIFF";
    sniff_tiff(d, s);
  } else if (starts("RIFF", 4) && starts("WEBP", 4, 8) && d.size() >= 32) {
    s.format = "WebP";
    if (starts("VP8X", 4, 12)) {
      s.width = 1 + (le32(&d[24]) & 0xFFFFFF);
      s.height = 1 + (le32(&d[27]) & 0xFFFFFF);
      sniff_webp_frames(d, s);
    } else if (starts("VP8L", 4, 12) && d[20] == 0x2F) {
      uint32_t bits = le32(&d[21]);
      s.width = 1 + (bits & 0x3FFF);
      s.height = 1 + ((bits >> 14) & 0x3FFF);
    } else if (starts("VP8 ", 4, 12)) {
      s.width = le16(&d[26]) & 0x3FFF;
      s.height = le16(&d[28]) & 0x3FFF;
    }
  } else if (d.size() >= 3 && d[0] == 'P' && d[1] >= '1' && d[1] <= '6' && std::isspace(d[2])) {
    s.format = "PNM";
    sniff_pnm(d, s);
  }
  return s;
}

void check_pixels(const std::string& path, int64_t width, int64_t height, int64_t max_pixels) {
  // Sizes from headers are below 2^32 each, so the product fits in 64 unsigned bits.
  uint64_t n = static_cast<uint64_t>(width) * static_cast<uint64_t>(height);
  if (max_pixels < 0 || n > static_cast<uint64_t>(max_pixels))
    throw Error(path, "image is " + std::to_string(width) + "x" + std::to_string(height) + " = " +
                          std::to_string(n) + " pixels, over the limit of " +
                          std::to_string(max_pixels) + " (--max-pixels)");
}

// Scale that maps a sample depth to [0,1].
double unit_scale(int depth) {
  switch (depth) {
    case CV_8U: return 1.0 / 255.0;
    case CV_16U: return 1.0 / 65535.0;
    default: return 1.0;
  }
}

// Alpha converted to `depth` (see the top of the file for the rule).
cv::Mat convert_alpha(const cv::Mat& alpha, int depth) {
  if (alpha.depth() == depth) return alpha;
  cv::Mat out;
  if (alpha.depth() == CV_32F || alpha.depth() == CV_64F) {
    cv::Mat clamped;
    cv::min(cv::max(alpha, 0.0), 1.0, clamped);
    clamped.convertTo(out, depth, depth == CV_8U ? 255.0 : depth == CV_16U ? 65535.0 : 1.0);
  } else if (depth == CV_32F) {
    alpha.convertTo(out, CV_32F, unit_scale(alpha.depth()));
  } else {
    // 8 <-> 16 bits: 257 = 65535 / 255 maps the full ranges onto each other exactly.
    alpha.convertTo(out, depth, alpha.depth() == CV_8U ? 257.0 : 1.0 / 257.0);
  }
  return out;
}

bool formats_with_alpha(const std::string& ext) {
  return ext == "png" || ext == "tif" || ext == "tiff" || ext == "webp" || ext == "bmp";
}

// The alpha plane a tRNS colour key means: transparent where every sample equals the key,
// opaque elsewhere, at the image's depth. Keys of 1, 2 and 4-bit gray are scaled as libpng
// expands those samples to 8 bits.
cv::Mat alpha_from_key(const cv::Mat& color, const std::vector<uint32_t>& key, int bit_depth) {
  const double scale = bit_depth < 8 ? 255.0 / ((1 << bit_depth) - 1) : 1.0;
  std::vector<cv::Mat> planes;
  cv::split(color, planes);
  cv::Mat keyed(color.size(), CV_8U, cv::Scalar(255));
  for (size_t k = 0; k < planes.size(); ++k) {
    // The key is R, G, B; OpenCV's planes are B, G, R.
    const double value = key[planes.size() == 3 ? 2 - k : 0] * scale;
    cv::Mat equal;
    cv::compare(planes[k], value, equal, cv::CMP_EQ);
    keyed &= equal;
  }
  cv::Mat alpha = ~keyed;
  if (color.depth() == CV_16U) alpha.convertTo(alpha, CV_16U, 257.0);
  return alpha;
}

bool is_opaque(const cv::Mat& alpha) {
  double lowest = 0;
  cv::minMaxLoc(alpha, &lowest);
  return lowest >= (alpha.depth() == CV_8U ? 255.0 : alpha.depth() == CV_16U ? 65535.0 : 1.0);
}

// A 32-bit BMP with a BITMAPV4HEADER whose bit fields include an alpha mask, the layout readers
// (OpenCV's among them) take as BGRA; `bgra` is 8-bit, 4 channels.
std::vector<uchar> encode_bmp_with_alpha(const cv::Mat& bgra) {
  const uint32_t header = 14, info = 108, row = 4 * static_cast<uint32_t>(bgra.cols);
  const uint32_t pixels = row * static_cast<uint32_t>(bgra.rows);
  std::vector<uchar> out(header + info + pixels, 0);
  auto put32 = [&](size_t at, uint32_t v) {
    for (int k = 0; k < 4; ++k) out[at + k] = static_cast<uchar>(v >> (8 * k));
  };
  out[0] = 'B';
  out[1] = 'M';
  put32(2, header + info + pixels);
  put32(10, header + info);
  put32(14, info);
  put32(18, static_cast<uint32_t>(bgra.cols));
  put32(22, static_cast<uint32_t>(bgra.rows));  // positive: rows stored bottom-up
  out[26] = 1;                                  // planes
  out[28] = 32;                                 // bits per pixel
  put32(30, 3);                                 // BI_BITFIELDS
  put32(34, pixels);
  put32(38, 2835);  // 72 dpi, as OpenCV writes
  put32(42, 2835);
  put32(54, 0x00FF0000);  // red, green, blue, alpha masks: bytes B, G, R, A in memory
  put32(58, 0x0000FF00);
  put32(62, 0x000000FF);
  put32(66, 0xFF000000);
  put32(70, 0x73524742);  // 'sRGB' colour space
  for (int y = 0; y < bgra.rows; ++y)
    std::memcpy(&out[header + info + row * static_cast<uint32_t>(bgra.rows - 1 - y)], bgra.ptr(y), row);
  return out;
}

int storable_depth(const std::string& ext, int depth) {
  if (ext == "tif" || ext == "tiff") return depth;
  if (ext == "png" || ext == "pgm" || ext == "ppm" || ext == "pnm")
    return depth == CV_32F ? CV_16U : depth;
  if (ext == "exr" || ext == "pfm" || ext == "hdr") return CV_32F;
  return CV_8U;
}

}  // namespace

ImageData load_image(const std::string& path, int64_t max_pixels, ReadMetadata metadata) {
  return decode_image(path, read_image_bytes(path), max_pixels, metadata);
}

namespace {

ImageSamples decode_samples(const std::string& path, std::vector<uchar> bytes, int64_t max_pixels,
                            ReadMetadata read_metadata_too) {
  if (bytes.empty()) throw Error(path, "empty file");
  Sniffed s = sniff(bytes);
  // OpenCV would pick a decoder by signature among many more (JPEG 2000, OpenEXR, DICOM, HDR,
  // ...), whose size we cannot check before decoding: only the formats list_images names are read.
  if (s.format.empty())
    throw Error(path, "not a recognised image (unknown format or corrupt data); PNG, JPEG, BMP, "
                      "TIFF, WebP and PNM are read");
  if (s.width < 0 || s.height < 0)
    throw Error(path, "truncated or corrupt image data (the " + s.format + " header gives no image size)");
  check_pixels(path, s.width, s.height, max_pixels);
  if (s.format == "JPEG") {
    // Debian's libjpeg-turbo 2.1 (OpenCV's JPEG decoder) reads 8-bit lossy JPEGs only; it
    // rejects the others with a message OpenCV swallows, which would read as "corrupt".
    if (s.jpeg_precision != 0 && s.jpeg_precision != 8)
      throw Error(ErrorKind::kUnsupported, path,
                  "is a " + std::to_string(s.jpeg_precision) + "-bit JPEG, which the JPEG decoder (8-bit libjpeg) "
                  "cannot read; convert it to a 16-bit PNG or TIFF");
    if (s.jpeg_sof == 0xC3 || s.jpeg_sof == 0xC7 || s.jpeg_sof == 0xCB || s.jpeg_sof == 0xCF)
      throw Error(ErrorKind::kUnsupported, path,
                  "is a lossless JPEG (ITU T.81 process 14), which the JPEG decoder cannot read; convert it to PNG or TIFF");
    // libjpeg decodes a cut-off JPEG with a warning and grey fill; a data set must not get that.
    bool has_end = false;
    for (size_t i = std::max<size_t>(s.jpeg_scan, 1); i < bytes.size() && !has_end; ++i)
      has_end = bytes[i - 1] == 0xFF && bytes[i] == 0xD9;
    if (s.jpeg_scan == 0 || !has_end) throw Error(path, "truncated or corrupt image data");
  }

  if (s.images > 1) {
    const std::string what = s.format == "TIFF" ? "a TIFF of " + std::to_string(s.images) + " pages"
                                                : "an animated " + s.format + " of " + std::to_string(s.images) + " frames";
    throw Error(ErrorKind::kUnsupported, path,
                "is " + what + ": only single images are read (all but the first would be lost); "
                "split it into one file per " + (s.format == "TIFF" ? "page (e.g. tiffsplit)" : "frame"));
  }

  cv::Mat mat;
  try {
    mat = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    throw Error(path, "truncated or corrupt image data (" + e.msg + ")");
  }
  ImageMetadata metadata;
  if (read_metadata_too == ReadMetadata::kYes) metadata = read_metadata(bytes.data(), bytes.size());
  bytes = {};
  if (mat.empty()) throw Error(path, "truncated or corrupt image data");
  check_pixels(path, mat.cols, mat.rows, max_pixels);
  if (s.format == "TIFF" && s.tiff_extra > 0 && s.tiff_samples > mat.channels())
    throw Error(ErrorKind::kUnsupported, path,
                "has " + std::to_string(s.tiff_samples) + " samples per pixel (" +
                    (s.tiff_samples == 2 ? "gray + alpha" : "colour + extra planes") + ") but the TIFF reader returns " +
                    std::to_string(mat.channels()) + ": refusing rather than losing its alpha (PNG keeps gray + alpha)");
  if (!s.png_key.empty() && (mat.channels() == 1 || mat.channels() == 3) && (mat.depth() == CV_8U || mat.depth() == CV_16U)) {
    cv::Mat alpha = alpha_from_key(mat, s.png_key, s.png_bit_depth);
    std::vector<cv::Mat> planes;
    cv::split(mat, planes);
    planes.push_back(alpha);
    cv::merge(planes, mat);
  }

  int depth = mat.depth();
  if (depth == CV_64F || depth == CV_16F) {
    cv::Mat f;
    mat.convertTo(f, CV_32F);
    mat = f;
    depth = CV_32F;
  }
  if (depth != CV_8U && depth != CV_16U && depth != CV_32F)
    throw Error(path, "unsupported sample type (signed integer samples); use 8 or 16-bit "
                      "unsigned or float");
  int channels = mat.channels();
  if (channels < 1 || channels > 4) throw Error(path, "unsupported channel count " + std::to_string(channels));

  ImageSamples samples;
  if (channels == 2 || channels == 4) {
    cv::extractChannel(mat, samples.alpha, channels - 1);
    if (channels == 2)
      cv::extractChannel(mat, samples.color, 0);
    else
      cv::cvtColor(mat, samples.color, cv::COLOR_BGRA2BGR);
  } else {
    samples.color = mat;
  }
  samples.metadata = std::move(metadata);
  mat.release();
  if (depth == CV_32F) {
    // NaN -> 0, then [0,1] (+inf -> 1, -inf -> 0).
    cv::patchNaNs(samples.color, 0.0);
    cv::min(cv::max(samples.color, 0.0), 1.0, samples.color);
  }
  return samples;
}

ImageData to_image_data(const ImageSamples& samples) {
  ImageData image;
  image.depth = samples.color.depth();
  image.alpha = samples.alpha;
  image.metadata = samples.metadata;
  image.pixels = mat_to_tensor(samples.color);
  return image;
}

}  // namespace

ImageSamples load_samples(const std::string& path, int64_t max_pixels, ReadMetadata metadata) {
  return decode_samples(path, read_image_bytes(path), max_pixels, metadata);
}

ImageData decode_image(const std::string& path, std::vector<uchar> bytes, int64_t max_pixels, ReadMetadata metadata) {
  return to_image_data(decode_samples(path, std::move(bytes), max_pixels, metadata));
}

// Both conversions go one plane at a time, straight into their destination: a 48-megapixel
// colour image must not hold several full-size float copies at once (the whole-image version
// peaked at ~17 bytes per sample when saving).
torch::Tensor mat_to_tensor(const cv::Mat& mat) {
  if (mat.empty()) throw Error("mat_to_tensor: empty image");
  const int depth = mat.depth();
  if (depth != CV_8U && depth != CV_16U && depth != CV_32F && depth != CV_64F)
    throw Error("mat_to_tensor: unsupported sample depth " + std::to_string(depth));
  const int channels = mat.channels();
  if (channels > 4) throw Error("mat_to_tensor: unsupported channel count " + std::to_string(channels));
  const int c = channels == 2 ? 1 : channels == 4 ? 3 : channels;  // alpha dropped
  torch::Tensor chw = torch::empty({c, mat.rows, mat.cols}, torch::kFloat);
  // OpenCV's planes are B, G, R (then alpha): RGB channel k is plane 2 - k.
  for (int k = 0; k < c; ++k) plane_to_float(mat, c == 3 ? 2 - k : 0, chw[k].data_ptr<float>());
  return chw;
}

cv::Mat tensor_to_mat(const torch::Tensor& chw_in, int depth) {
  if (depth != CV_8U && depth != CV_16U && depth != CV_32F)
    throw Error("tensor_to_mat: depth must be CV_8U, CV_16U or CV_32F");
  torch::Tensor chw = chw_in.detach().to(torch::kCPU, torch::kFloat);
  if (chw.dim() == 2) chw = chw.unsqueeze(0);
  if (chw.dim() != 3 || (chw.size(0) != 1 && chw.size(0) != 3))
    throw Error("tensor_to_mat: expected a 1 or 3 x H x W tensor, got " + std::to_string(chw.dim()) +
                " dimensions");
  const int c = static_cast<int>(chw.size(0));
  std::vector<cv::Mat> planes(c);
  // RGB channel k becomes BGR plane 2 - k.
  for (int k = 0; k < c; ++k) planes[c == 3 ? 2 - k : 0] = float_to_plane(chw[k], depth);
  if (c == 1) return planes[0];
  cv::Mat out;
  cv::merge(planes, out);
  return out;
}

void plane_to_float(const cv::Mat& mat, int plane, float* dst) {
  cv::Mat source;
  if (mat.channels() == 1)
    source = mat;
  else
    cv::extractChannel(mat, source, plane);
  cv::Mat out(mat.rows, mat.cols, CV_32F, dst);
  source.convertTo(out, CV_32F, unit_scale(mat.depth()));  // writes into out: same size and type
}

cv::Mat float_to_plane(const torch::Tensor& plane, int depth) {
  torch::Tensor p = torch::nan_to_num(plane, 0.0, 1.0, 0.0).clamp_(0, 1).contiguous();
  const cv::Mat f(static_cast<int>(p.size(0)), static_cast<int>(p.size(1)), CV_32F, p.data_ptr<float>());
  cv::Mat out;
  // convertTo rounds to nearest and saturates.
  f.convertTo(out, depth, depth == CV_8U ? 255.0 : depth == CV_16U ? 65535.0 : 1.0);
  return out;
}

namespace {

// The checks save_image makes before converting anything; returns the lower-case extension.
std::string check_destination(const std::string& path) {
  std::string ext = lower_extension(path);
  if (ext.empty() || !cv::haveImageWriter(path))
    throw Error(path, "unknown image format for extension '" + ext + "'");
  fs::path target(path);
  fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  std::error_code ec;
  fs::file_status dir_status = fs::status(dir, ec);
  if (!fs::exists(dir_status)) throw Error(path, "directory " + dir.string() + " does not exist");
  if (!fs::is_directory(dir_status)) throw Error(path, dir.string() + " is not a directory");
  return ext;
}

int target_depth(const std::string& ext, int depth) {
  return storable_depth(ext, depth == CV_16U || depth == CV_32F ? depth : CV_8U);
}

// Adds the alpha plane where the format keeps it, encodes, adds the metadata where the format
// holds it (else turns the pixels upright) and writes atomically.
void encode_and_write(const std::string& path, const std::string& ext, cv::Mat mat, cv::Mat alpha, int depth,
                      IfExists if_exists, const ImageMetadata& metadata) {
  const std::string loss = alpha_loss(path, alpha);
  if (!loss.empty()) throw Error(ErrorKind::kUnsupported, path, loss);
  if (!holds_metadata(ext) && metadata.orientation != 1) {
    mat = apply_orientation(mat, metadata.orientation);
    if (!alpha.empty()) alpha = apply_orientation(alpha, metadata.orientation);
  }
  if (!alpha.empty() && formats_with_alpha(ext)) {
    if (alpha.rows != mat.rows || alpha.cols != mat.cols || alpha.channels() != 1)
      throw Error(path, "alpha plane size does not match the image");
    std::vector<cv::Mat> planes;
    cv::split(mat, planes);
    if (planes.size() == 1) planes = {planes[0], planes[0], planes[0]};
    planes.push_back(convert_alpha(alpha, depth));
    cv::merge(planes, mat);
  }

  std::vector<uchar> encoded;
  try {
    if (ext == "bmp" && mat.channels() == 4)
      encoded = encode_bmp_with_alpha(mat);
    else if (!cv::imencode("." + ext, mat, encoded))
      throw Error(path, "the " + ext + " encoder failed");
  } catch (const cv::Exception& e) {
    throw Error(path, "cannot encode as " + ext + ": " + e.msg);
  }
  mat.release();
  encoded = embed_metadata(path, ext, std::move(encoded), metadata);
  write_file_atomically(path, encoded.data(), encoded.size(), if_exists);
}

}  // namespace

std::string alpha_loss(const std::string& path, const cv::Mat& alpha) {
  const std::string ext = lower_extension(path);
  if (alpha.empty() || formats_with_alpha(ext) || is_opaque(alpha)) return "";
  return "the image has transparency (an alpha channel) that a ." + ext +
         " file cannot store: refusing to drop it (PNG, TIFF, WebP and BMP keep it)";
}

void save_image(const std::string& path, const ImageData& image, IfExists if_exists) {
  if (!image.pixels.defined()) throw Error(path, "nothing to save (no pixels)");
  const std::string ext = check_destination(path);
  const int depth = target_depth(ext, image.depth);
  torch::Tensor pixels = image.pixels;
  if (pixels.dim() == 3 && ext == "pgm" && pixels.size(0) == 3) pixels = to_channels(pixels, 1);
  if (pixels.dim() == 3 && ext == "ppm" && pixels.size(0) == 1) pixels = to_channels(pixels, 3);
  encode_and_write(path, ext, tensor_to_mat(pixels, depth), image.alpha, depth, if_exists, image.metadata);
}

void save_samples(const std::string& path, const ImageSamples& samples, IfExists if_exists) {
  if (samples.color.empty()) throw Error(path, "nothing to save (no pixels)");
  const std::string ext = check_destination(path);
  const int depth = target_depth(ext, samples.color.depth());
  const int channels = samples.color.channels();
  const bool as_is = depth == samples.color.depth() && (channels == 1 || channels == 3) &&
                     !(ext == "pgm" && channels == 3) && !(ext == "ppm" && channels == 1);
  // Conversions (depth, channels) are rare; they go through the float path so both agree exactly.
  if (!as_is) return save_image(path, to_image_data(samples), if_exists);
  encode_and_write(path, ext, samples.color, samples.alpha, depth, if_exists, samples.metadata);
}

void save_mat(const std::string& path, const cv::Mat& mat, IfExists if_exists) {
  std::vector<uchar> encoded;
  try {
    if (!cv::imencode(fs::path(path).extension().string(), mat, encoded))
      throw Error(path, "the image encoder failed");
  } catch (const cv::Exception& e) {
    throw Error(path, "cannot encode the image: " + e.msg);
  }
  write_file_atomically(path, encoded.data(), encoded.size(), if_exists);
}

torch::Tensor to_channels(const torch::Tensor& chw, int channels) {
  if (chw.dim() < 3) throw Error("to_channels: expected C x H x W, got " + std::to_string(chw.dim()) + " dimensions");
  int64_t c = chw.size(-3);
  if (c == channels) return chw;
  if (c == 1 && channels == 3) return torch::cat({chw, chw, chw}, -3);
  if (c == 3 && channels == 1) {
    auto planes = chw.unbind(-3);
    return (0.299 * planes[0] + 0.587 * planes[1] + 0.114 * planes[2]).unsqueeze(-3);
  }
  throw Error("to_channels: cannot convert " + std::to_string(c) + " channels to " +
              std::to_string(channels) + " (1 or 3 supported)");
}

bool has_equal_planes(const cv::Mat& color) {
  if (color.empty() || color.channels() != 3) return false;
  std::vector<cv::Mat> planes;
  cv::split(color, planes);
  return cv::countNonZero(planes[0] != planes[1]) == 0 && cv::countNonZero(planes[1] != planes[2]) == 0;
}

bool has_image_extension(const std::string& path) {
  static const std::set<std::string> kExtensions = {"png", "jpg", "jpeg", "bmp", "tif", "tiff",
                                                    "webp", "pgm", "ppm", "pnm"};
  return kExtensions.count(lower_extension(path)) > 0;
}

std::vector<std::string> list_images(const std::string& root, std::vector<Error>* unlisted,
                                     std::vector<std::string>* temporaries) {
  std::error_code ec;
  fs::file_status st = fs::status(root, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) throw Error(root, errno_reason(ec.value()));
  if (!fs::exists(st)) throw Error(root, "no such file or directory");
  if (!fs::is_directory(st)) return {root};
  // One directory_iterator per folder rather than a recursive_directory_iterator: the latter
  // ends the whole walk at the first folder it cannot open, and one locked subfolder must not
  // hide the thousands of readable files beside it.
  std::vector<std::string> files;
  std::vector<Error> problems;
  std::vector<fs::path> pending{fs::path(root)};
  while (!pending.empty()) {
    const fs::path dir = std::move(pending.back());
    pending.pop_back();
    fs::directory_iterator it(dir, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      const fs::path& p = it->path();
      std::error_code type_ec;
      // Links to folders are not followed (no cycles), as in the file-level rule above.
      const fs::file_status type = it->symlink_status(type_ec);
      if (type_ec && type_ec != std::errc::no_such_file_or_directory) {
        // An entry whose kind cannot be told (a path over PATH_MAX, an I/O error) may be a folder
        // of images or an image: missing it silently would make a job look complete.
        problems.emplace_back(p.string(), "cannot read: " + errno_reason(type_ec.value()) + " (" +
                                              std::to_string(p.string().size()) + " characters)");
        continue;
      }
      if (fs::is_directory(type)) pending.push_back(p);
      if (!has_image_extension(p.string())) continue;
      std::error_code ignored;
      if (fs::is_directory(fs::status(p, ignored))) continue;  // follows links; not_found if dangling
      if (is_atomic_temporary(p.filename().string())) {
        if (temporaries) temporaries->push_back(p.string());
        continue;
      }
      files.push_back(p.string());
    }
    if (!ec) continue;
    // Without the root there is nothing to list: that is the job's error, not a folder's.
    if (dir == fs::path(root)) throw Error(root, "cannot list directory: " + errno_reason(ec.value()));
    problems.emplace_back(dir.string(), "cannot list: " + errno_reason(ec.value()));
    ec.clear();
  }
  std::sort(files.begin(), files.end());
  if (temporaries) std::sort(temporaries->begin(), temporaries->end());
  std::sort(problems.begin(), problems.end(), [](const Error& a, const Error& b) { return a.path() < b.path(); });
  if (!problems.empty() && !unlisted) throw problems.front();
  if (unlisted) unlisted->insert(unlisted->end(), problems.begin(), problems.end());
  return files;
}

}  // namespace bottleneck

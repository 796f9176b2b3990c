#include "image/photo_metadata.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>

#include <exiv2/exiv2.hpp>
#include <opencv2/core.hpp>
#include <zlib.h>

#include "util/error.h"

// Decisions beyond the header's contract:
//  - libexiv2 0.27 writes a PNG's EXIF as ImageMagick's "Raw profile type exif" text chunk,
//    which browsers and most viewers ignore; the EXIF goes into a standard eXIf chunk (PNG 1.5
//    extensions) written here instead, and libexiv2 writes only the ICC profile (iCCP) and XMP.
//  - WebP outputs get no metadata: libexiv2 0.27.6 writes a WebP's ICC chunk under the fourcc
//    "VP8X" (measured: Pillow then cannot open the file; dwebp ignores the profile).
//  - libexiv2's own warnings (it prints them to stderr) are muted: a problem that matters comes
//    back as an exception and then as our message.
//  - The XMP toolkit inside libexiv2 must be initialised once before threads use it (the denoiser
//    reads on one thread and writes on another).

namespace bottleneck {
namespace fs = std::filesystem;

namespace {

void init_exiv2() {
  static std::once_flag once;
  std::call_once(once, [] {
    Exiv2::LogMsg::setLevel(Exiv2::LogMsg::mute);
    Exiv2::XmpParser::initialize();
  });
}

// TIFF IFD0 tags that describe a TIFF file's own image data, not the photo: copied into
// another file they would describe data that is not there.
bool describes_tiff_data(uint16_t tag) {
  static const std::set<uint16_t> kTags = {
      254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 288, 289, 290, 291,
      292, 293, 317, 320, 322, 323, 324, 325, 330, 338, 339, 340, 341, 347, 512, 513, 514, 515, 517, 518,
      519, 520, 521, 530, 531, 532,
      700,    // XMP (kept as the packet)
      34675,  // ICC profile (kept as the profile)
  };
  return kTags.count(tag) > 0;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

// `png` with an eXIf chunk holding `exif` before its first IDAT (where PNG 1.5 puts it).
std::vector<uint8_t> with_exif_chunk(const std::string& path, const std::vector<uint8_t>& png,
                                     const std::vector<uint8_t>& exif) {
  for (size_t at = 8; at + 8 <= png.size();) {
    const size_t length = be32(&png[at]);
    if (std::memcmp(&png[at + 4], "IDAT", 4) == 0) {
      std::vector<uint8_t> chunk(12 + exif.size());
      const uint32_t n = static_cast<uint32_t>(exif.size());
      for (int k = 0; k < 4; ++k) chunk[k] = static_cast<uint8_t>(n >> (24 - 8 * k));
      std::memcpy(&chunk[4], "eXIf", 4);
      std::copy(exif.begin(), exif.end(), chunk.begin() + 8);
      const uint32_t crc = static_cast<uint32_t>(crc32(0L, &chunk[4], static_cast<uInt>(4 + exif.size())));
      for (int k = 0; k < 4; ++k) chunk[8 + exif.size() + k] = static_cast<uint8_t>(crc >> (24 - 8 * k));
      std::vector<uint8_t> out(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(at));
      out.insert(out.end(), chunk.begin(), chunk.end());
      out.insert(out.end(), png.begin() + static_cast<std::ptrdiff_t>(at), png.end());
      return out;
    }
    if (length > png.size() - at - 12) break;
    at += 12 + length;
  }
  throw Error(path, "cannot add the EXIF block: the PNG encoder's output has no image data chunk");
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

ImageMetadata read_metadata(const uint8_t* data, size_t size) {
  init_exiv2();
  ImageMetadata m;
  try {
    const long n = static_cast<long>(size);
    const int type = Exiv2::ImageFactory::getType(data, n);
    if (type == Exiv2::ImageType::none) return m;
    Exiv2::Image::AutoPtr image = Exiv2::ImageFactory::open(data, n);
    image->readMetadata();
    Exiv2::ExifData exif = image->exifData();
    if (type == Exiv2::ImageType::tiff) {
      for (auto it = exif.begin(); it != exif.end();)
        it = it->groupName() == "Image" && describes_tiff_data(it->tag()) ? exif.erase(it) : std::next(it);
    }
    if (!exif.empty()) {
      const auto it = exif.findKey(Exiv2::ExifKey("Exif.Image.Orientation"));
      if (it != exif.end() && it->count() > 0) {
        const long v = it->toLong();
        m.orientation = v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
      }
      const Exiv2::ByteOrder order =
          image->byteOrder() == Exiv2::invalidByteOrder ? Exiv2::littleEndian : image->byteOrder();
      Exiv2::Blob blob;
      Exiv2::ExifParser::encode(blob, order, exif);
      m.exif.assign(blob.begin(), blob.end());
    }
    if (image->iccProfileDefined()) {
      const Exiv2::DataBuf* icc = image->iccProfile();
      m.icc.assign(icc->pData_, icc->pData_ + icc->size_);
    }
    m.xmp = image->xmpPacket();
  } catch (const std::exception& e) {
    m = ImageMetadata();
    m.problem = e.what();
  }
  return m;
}

bool holds_metadata(const std::string& ext) {
  static const std::set<std::string> kFormats = {"jpg", "jpeg", "png", "tif", "tiff"};
  return kFormats.count(lower(ext)) > 0;
}

std::vector<uint8_t> embed_metadata(const std::string& path, const std::string& ext_in, std::vector<uint8_t> encoded,
                                    const ImageMetadata& m) {
  const std::string ext = lower(ext_in);
  if (!holds_metadata(ext) || (m.exif.empty() && m.icc.empty() && m.xmp.empty())) return encoded;
  init_exiv2();
  const bool png = ext == "png";
  try {
    if (!m.icc.empty() || !m.xmp.empty() || (!png && !m.exif.empty())) {
      Exiv2::Image::AutoPtr image = Exiv2::ImageFactory::open(encoded.data(), static_cast<long>(encoded.size()));
      image->readMetadata();
      if (!png && !m.exif.empty()) {
        Exiv2::ExifData exif;
        Exiv2::ExifParser::decode(exif, m.exif.data(), static_cast<uint32_t>(m.exif.size()));
        image->setExifData(exif);
      }
      if (!m.icc.empty()) {
        Exiv2::DataBuf icc(m.icc.data(), static_cast<long>(m.icc.size()));
        image->setIccProfile(icc, false);
      }
      if (!m.xmp.empty()) {
        image->setXmpPacket(m.xmp);
        image->writeXmpFromPacket(true);
      }
      image->writeMetadata();
      Exiv2::BasicIo& io = image->io();
      if (io.open() != 0) throw Error(path, "cannot read back the image with its metadata");
      std::vector<uint8_t> out(io.size());
      const long got = io.read(out.data(), static_cast<long>(out.size()));
      io.close();
      if (got != static_cast<long>(out.size())) throw Error(path, "cannot read back the image with its metadata");
      encoded = std::move(out);
    }
    if (png && !m.exif.empty()) encoded = with_exif_chunk(path, encoded, m.exif);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kUnsupported, path, std::string("cannot write the input's metadata (EXIF, ICC, XMP) into it: ") + e.what());
  }
  return encoded;
}

cv::Mat apply_orientation(const cv::Mat& mat, int orientation) {
  cv::Mat out;
  switch (orientation) {
    case 2: cv::flip(mat, out, 1); return out;               // mirrored left-right
    case 3: cv::rotate(mat, out, cv::ROTATE_180); return out;
    case 4: cv::flip(mat, out, 0); return out;               // mirrored top-bottom
    case 5: cv::transpose(mat, out); return out;             // mirrored about the main diagonal
    case 6: cv::rotate(mat, out, cv::ROTATE_90_CLOCKWISE); return out;
    case 7: {                                                // mirrored about the other diagonal
      cv::Mat t;
      cv::transpose(mat, t);
      cv::rotate(t, out, cv::ROTATE_180);
      return out;
    }
    case 8: cv::rotate(mat, out, cv::ROTATE_90_COUNTERCLOCKWISE); return out;
    default: return mat;
  }
}

std::string metadata_note(const std::string& path, const ImageMetadata& m) {
  if (!m.problem.empty()) return "its metadata (EXIF, ICC, XMP) could not be read (" + m.problem + "): written without it";
  std::string ext = fs::path(path).extension().string();
  if (!ext.empty()) ext.erase(0, 1);
  if (holds_metadata(ext) || (m.exif.empty() && m.icc.empty() && m.xmp.empty())) return "";
  std::vector<std::string> parts;
  if (!m.exif.empty()) parts.push_back("EXIF");
  if (!m.icc.empty()) parts.push_back("ICC profile");
  if (!m.xmp.empty()) parts.push_back("XMP");
  std::string what;
  for (size_t k = 0; k < parts.size(); ++k) what += (k ? k + 1 == parts.size() ? " and " : ", " : "") + parts[k];
  std::string note = "a ." + lower(ext) + " output gets no metadata: its " + what + " dropped (JPEG, PNG and TIFF keep them)";
  if (m.orientation != 1)
    note += "; pixels turned upright (EXIF orientation " + std::to_string(m.orientation) + ")";
  return note;
}

}  // namespace bottleneck

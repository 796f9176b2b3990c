#pragma once

// What a photo carries beside its pixels: EXIF (camera, exposure, date, GPS, orientation), the
// ICC colour profile and XMP. OpenCV 4.6 reads none of it and writes none of it, so it is read
// from the input's bytes and written into the output's encoded bytes here, through libexiv2.
//
// Orientation policy (one for every format): the pixels stay as stored and the EXIF block is
// copied unchanged, orientation included, so a viewer shows the output the same way up as the
// input (and a viewer that ignores orientation shows both alike). A format that holds no
// metadata here (BMP, PNM; WebP, whose writer in libexiv2 0.27 is broken) gets the pixels turned
// upright instead (apply_orientation), since the
// orientation cannot travel with them; its EXIF, ICC and XMP are dropped, and metadata_note
// says so for the log.

#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

namespace bottleneck {

struct ImageMetadata {
  std::vector<uint8_t> exif;  // the EXIF block, TIFF-structured (the payload of a JPEG's "Exif"
                              // APP1 segment or a PNG's eXIf chunk); empty if none. From a TIFF,
                              // the tags that describe its image data (size, strips, compression)
                              // are left out: they belong to the file, not to the photo
  std::vector<uint8_t> icc;   // ICC profile bytes; empty if none
  std::string xmp;            // XMP packet; empty if none
  int orientation = 1;        // EXIF Orientation 1..8 (1: the stored pixels are upright)
  std::string problem;        // why the metadata could not be read ("" = read, or none there)

  bool empty() const { return exif.empty() && icc.empty() && xmp.empty() && problem.empty(); }
};

// The metadata of an encoded image (any format libexiv2 knows; others give an empty result).
// Never throws: metadata that cannot be parsed leaves `problem` set and the rest empty, since the
// pixels may still be fine.
ImageMetadata read_metadata(const uint8_t* data, size_t size);

// Whether a file with this extension gets EXIF, ICC and XMP: jpg, jpeg, png, tif, tiff. BMP and
// PNM hold none; WebP does, but libexiv2 0.27.6 writes its ICC chunk under a wrong name.
// (Every format libexiv2 reads gives its metadata: a WebP's goes into a JPEG output.)
bool holds_metadata(const std::string& ext);

// `encoded` (an image in the format `ext` names, as OpenCV wrote it) with `metadata` written into
// it: JPEG APP1/APP2, PNG eXIf/iCCP/iTXt, TIFF tags; other formats come back unchanged. Throws
// Error(path, reason) if libexiv2 cannot write it (the output would lack what the input had).
std::vector<uint8_t> embed_metadata(const std::string& path, const std::string& ext, std::vector<uint8_t> encoded,
                                    const ImageMetadata& metadata);

// `mat` turned as EXIF orientation `orientation` says, so that it is upright (orientation 6:
// rotated 90 degrees clockwise); 1 or an invalid value returns it unchanged.
cv::Mat apply_orientation(const cv::Mat& mat, int orientation);

// What writing `metadata` into a file at `path` changes, for the log ("" when nothing): metadata
// that could not be read, or a format that holds none (dropped; pixels turned upright).
std::string metadata_note(const std::string& path, const ImageMetadata& metadata);

}  // namespace bottleneck

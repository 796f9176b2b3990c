#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>
#include <torch/types.h>

#include "image/photo_metadata.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace bottleneck {

// Decoded images larger than this are refused before decoding where the header tells the size
// (and after decoding otherwise): a 100000 x 100000 "decompression bomb" must not allocate 30 GB.
inline constexpr int64_t kDefaultMaxPixels = 256LL * 1024 * 1024;

// An image as the library sees it.
struct ImageData {
  torch::Tensor pixels;  // float32 C x H x W in [0,1]; C = 1 (gray) or 3 (RGB order)
  cv::Mat alpha;         // the alpha plane exactly as decoded (CV_8U or CV_16U), empty if none
  int depth = 0;         // bit depth of the file's samples: CV_8U or CV_16U (float files: CV_32F)
  ImageMetadata metadata;  // EXIF, ICC, XMP: read only when asked (ReadMetadata::kYes), written
                           // by save_image where the format holds them (photo_metadata.h)
};

// An image as decoded, before conversion to float: what a folder job holds, since a large
// photo as float is 4x (8-bit) its size.
struct ImageSamples {
  cv::Mat color;  // H x W gray or BGR (OpenCV's order): CV_8U, CV_16U, or CV_32F in [0,1]
  cv::Mat alpha;  // as in ImageData
  ImageMetadata metadata;  // as in ImageData
};

// Whether a load also reads the file's EXIF, ICC profile and XMP (through libexiv2: a job that
// writes photos keeps them; training and the codec need only the pixels).
enum class ReadMetadata { kNo, kYes };

// Reads PNG, JPEG, BMP, TIFF, WebP and PNM (recognised by content, not by extension) through
// OpenCV, keeping 16-bit samples and alpha. Throws Error(path, reason) for a missing,
// unreadable, empty, truncated or unsupported file, and for one over max_pixels, which is
// checked from the header before anything is decoded. Nothing a file holds is dropped
// silently: a file with several images (a multi-page TIFF, an animated PNG or WebP) and one
// whose alpha the decoder would lose (a gray + alpha TIFF) are refused (kUnsupported) with the
// count; a PNG's colour-key transparency (tRNS on gray or RGB) becomes an alpha plane.
ImageData load_image(const std::string& path, int64_t max_pixels = kDefaultMaxPixels,
                     ReadMetadata metadata = ReadMetadata::kNo);

// load_image without the conversion to float: the same checks, errors and pixel values
// (mat_to_tensor(samples.color) equals load_image's pixels).
ImageSamples load_samples(const std::string& path, int64_t max_pixels = kDefaultMaxPixels,
                          ReadMetadata metadata = ReadMetadata::kNo);

// The decoding half of load_image, for bytes already in memory (the fuzz target feeds it
// directly); `name` is only used in error messages.
ImageData decode_image(const std::string& name, std::vector<unsigned char> bytes,
                       int64_t max_pixels = kDefaultMaxPixels, ReadMetadata metadata = ReadMetadata::kNo);

// Writes the image in the format the extension names, at `depth` (CV_8U or CV_16U; formats
// without 16-bit support such as JPEG get 8 bits), with alpha when present. Written to a
// temporary file beside `path` and renamed, so a killed process never leaves a partial file;
// `if_exists` as in write_atomically. Alpha is written to PNG, TIFF, WebP and BMP (a V4 header);
// a format without alpha (JPEG, PNM) drops it only when it is fully opaque, else Error
// (kUnsupported): see alpha_loss. The image's metadata is written into JPEG, PNG and TIFF
// (pixels as stored, EXIF orientation unchanged); BMP, PNM and WebP get none, so the pixels are
// turned upright and the metadata dropped (metadata_note says so; holds_metadata). Error if
// libexiv2 cannot write it.
void save_image(const std::string& path, const ImageData& image, IfExists if_exists = IfExists::kReplace);

// save_image for samples: writes exactly what
// save_image({mat_to_tensor(samples.color), samples.alpha, samples.color.depth()}) writes,
// without the float copy when the format stores the samples as they are.
void save_samples(const std::string& path, const ImageSamples& samples, IfExists if_exists = IfExists::kReplace);

// Writes an OpenCV image as it is laid out (gray, BGR or BGRA; 8 or 16 bits) in the format the
// extension names, atomically like save_image. For pictures made with OpenCV (charts, strips).
void save_mat(const std::string& path, const cv::Mat& mat, IfExists if_exists = IfExists::kReplace);

// Why writing `alpha` into a file at `path` would lose it ("" when it would not: no alpha, a
// format that stores alpha, or an alpha that is opaque everywhere, which carries nothing). Lets
// a job refuse such a file before spending time on it; the writers above refuse it anyway.
std::string alpha_loss(const std::string& path, const cv::Mat& alpha);

// cv::Mat (HxW or HxWxC as OpenCV decodes: BGR/BGRA, 8U/16U/32F) <-> float C x H x W in [0,1].
// Alpha, if present, is dropped by mat_to_tensor; tensor_to_mat rounds and saturates.
torch::Tensor mat_to_tensor(const cv::Mat& mat);
cv::Mat tensor_to_mat(const torch::Tensor& chw, int depth);

// Their per-plane steps, for code that converts part of an image at a time (the tiler, one
// window) and must agree with them exactly:
//  - plane_to_float writes plane `plane` of `mat` (OpenCV's order; a one-channel image has only
//    plane 0) as float in [0,1] into `dst`, mat.rows x mat.cols contiguous floats;
//  - float_to_plane turns an H x W float plane into one-channel samples of `depth`: NaN -> 0,
//    clipped to [0,1], rounded to nearest and saturated.
void plane_to_float(const cv::Mat& mat, int plane, float* dst);
cv::Mat float_to_plane(const torch::Tensor& plane, int depth);

// Whether `color` has three planes that are equal everywhere: a gray photo stored as RGB (or a
// gray + alpha PNG, which OpenCV decodes as BGRA). Such an image is gray and is denoised as gray.
bool has_equal_planes(const cv::Mat& color);

// Converts between 1 and 3 channels: gray -> RGB replicates; RGB -> gray is the BT.601 luma
// (0.299 R + 0.587 G + 0.114 B).
torch::Tensor to_channels(const torch::Tensor& chw, int channels);

// Image files under `root` (recursively), sorted; `root` may also be a single file.
// Recognised by extension (png jpg jpeg bmp tif tiff webp pgm ppm pnm, any case). A missing or
// unlistable `root` throws Error. A subfolder that cannot be listed (no permission, I/O error)
// does not stop the listing: it is appended to `unlisted` as Error(DIR, "cannot list: REASON"),
// sorted by path, and its contents are missing from the result; without `unlisted` it throws
// that Error instead. So does an entry whose kind cannot be told (a path longer than the
// system's PATH_MAX, an I/O error): Error(ENTRY, "cannot read: REASON"), never a silent gap.
// Hidden temporaries of our atomic writes (.NAME.tmp-PID-N.EXT, is_atomic_temporary) are never
// inputs: they are left out, and appended to `temporaries` (sorted) when it is given.
std::vector<std::string> list_images(const std::string& root, std::vector<Error>* unlisted = nullptr,
                                     std::vector<std::string>* temporaries = nullptr);
bool has_image_extension(const std::string& path);

}  // namespace bottleneck

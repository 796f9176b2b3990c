#include "codec/codec_compare.h"

#include <opencv2/imgcodecs.hpp>

#include "image/image_io.h"
#include "image/metrics.h"
#include "report/comparison.h"
#include "util/error.h"
#include "util/text_format.h"

namespace bottleneck {
namespace {

std::vector<uchar> encode(const cv::Mat& image, const std::string& ext, int quality) {
  const int flag = ext == ".jpg" ? cv::IMWRITE_JPEG_QUALITY : cv::IMWRITE_WEBP_QUALITY;
  std::vector<uchar> bytes;
  if (!cv::imencode(ext, image, bytes, {flag, quality})) throw Error("OpenCV cannot encode " + ext);
  return bytes;
}

std::string caption(size_t bytes, double pixels, double psnr) {
  return std::to_string(bytes) + " B  " + fixed(8.0 * static_cast<double>(bytes) / pixels, 3) + " bpp  " + fixed(psnr, 2) + " dB";
}

}  // namespace

SizeMatched encode_at_most(const cv::Mat& image, const std::string& ext, size_t max_bytes) {
  SizeMatched m;
  m.codec = ext == ".jpg" ? "JPEG" : "WebP";
  // Sizes grow with the setting (OpenCV's JPEG and WebP are monotone in it, near enough that a
  // bisection over 1..100 finds the largest fitting setting or one next to it).
  int lo = 1, hi = 100;
  std::vector<uchar> best = encode(image, ext, 1);
  m.fits = best.size() <= max_bytes;
  m.quality = 1;
  if (m.fits) {
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      std::vector<uchar> b = encode(image, ext, mid);
      if (b.size() <= max_bytes) {
        lo = mid;
        best = std::move(b);
      } else {
        hi = mid - 1;
      }
    }
    m.quality = lo;
  }
  m.bytes = best.size();
  const cv::Mat decoded = cv::imdecode(best, image.channels() == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
  if (decoded.empty()) throw Error("OpenCV cannot decode its own " + ext);
  m.decoded = mat_to_tensor(decoded);
  const double pixels = static_cast<double>(image.total());
  m.bpp = 8.0 * static_cast<double>(m.bytes) / pixels;
  m.psnr = psnr(m.decoded, mat_to_tensor(image));
  return m;
}

cv::Mat compare_at_equal_size(const cv::Mat& image, const CompressedImage& ours) {
  const double pixels = static_cast<double>(image.total());
  std::vector<Panel> panels;
  panels.push_back({mat_to_tensor(image), "original", std::to_string(image.cols) + " x " + std::to_string(image.rows)});
  panels.push_back({mat_to_tensor(ours.decoded), "ours q" + fixed(ours.quality, 1), caption(ours.bytes.size(), pixels, ours.psnr)});
  for (const char* ext : {".jpg", ".webp"}) {
    const SizeMatched m = encode_at_most(image, ext, ours.bytes.size());
    panels.push_back({m.decoded, m.codec + " q" + std::to_string(m.quality) + (m.fits ? "" : " (larger)"),
                      caption(m.bytes, pixels, m.psnr)});
  }
  return make_comparison(panels);
}

}  // namespace bottleneck

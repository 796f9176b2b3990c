#include "codec/compressor.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include <opencv2/core.hpp>

#include "codec/codec_tiles.h"
#include "codec/rans.h"
#include "image/image_io.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace bottleneck {
namespace {

// Bisection steps of the searches: 20 halvings of 1..100 leave the bpp search within 1e-4
// quality (finer than a byte of most files); the PSNR search decodes at every step, so it
// stops at 12 (0.025 quality, far below a visible step).
constexpr int kBppSearchSteps = 20;
constexpr int kPsnrSearchSteps = 12;

int64_t latent_side(int64_t pixels) { return (pixels + CodecModelImpl::kStride - 1) / CodecModelImpl::kStride; }

// Where a quality codes: its rate position and the frozen table set. A "step" prior codes at the
// frozen step nearest the quality; a "gained" one at the quality itself, with its one set.
struct RatePoint {
  double position = 0;
  size_t step = 0;
};

RatePoint rate_point(const CodecModelImpl& m, float quality) {
  const double r = rate_position(quality, m.spec().rates);
  if (m.spec().prior != "step") return {r, 0};
  const int step = m.nearest_step(r);
  return {m.step_position(step), static_cast<size_t>(step)};
}

// The quality a file records for `quality`: that of its frozen step (the decoder finds the
// step again from it), or itself for a "gained" prior.
float coded_quality(const CodecModelImpl& m, float quality) {
  if (m.spec().prior != "step" || m.spec().rates == 1) return quality;
  const double r = rate_point(m, quality).position;
  return static_cast<float>(kMinQuality + r / static_cast<double>(m.spec().rates - 1) * (kMaxQuality - kMinQuality));
}

// The synthesis of decoded symbols (1 x M x h x w) at quality q, tile by tile, cropped to the
// image, converted to its channels and clamped, as samples of `depth` (gray or BGR); with
// `pixels` also as floats (C x H x W). One function for the decoder and the encoder's PSNR, so
// both see the same.
cv::Mat synthesise(LoadedCodec& codec, const torch::Tensor& symbols, float quality, int64_t height, int64_t width,
                   int channels, int depth, int tile, torch::Tensor* pixels = nullptr) {
  CodecModelImpl& m = *codec.model;
  const RatePoint point = rate_point(m, quality);
  const torch::Tensor prior_gain = m.prior_gain(m.gains_at(point.position));
  const torch::Tensor inverse_gain = m.inverse_gains_at(point.position);
  cv::Mat out(static_cast<int>(height), static_cast<int>(width), CV_MAKETYPE(depth, channels));
  if (pixels) *pixels = torch::empty({channels, height, width});
  tiled_synthesis(
      m, symbols.size(2), symbols.size(3),
      [&](int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
        return m.prior->dequantize(symbols.slice(2, y0, y1).slice(3, x0, x1), prior_gain) * inverse_gain;
      },
      height, width,
      [&](int64_t y, int64_t x, const torch::Tensor& core) {
        const torch::Tensor c = to_channels(core, channels).clamp(0, 1);
        const int64_t h = c.size(1), w = c.size(2);
        tensor_to_mat(c, depth).copyTo(out(cv::Rect(static_cast<int>(x), static_cast<int>(y), static_cast<int>(w),
                                                    static_cast<int>(h))));
        if (pixels) pixels->slice(1, y, y + h).slice(2, x, x + w).copy_(c);
      },
      tile);
  return out;
}

// The image at 8 bits, as coded.
cv::Mat eight_bit(const cv::Mat& image) {
  if (image.depth() == CV_8U) return image;
  if (image.depth() != CV_16U) throw Error(ErrorKind::kInvalidData, "", "samples must be 8 or 16 bits");
  cv::Mat eight;
  image.convertTo(eight, CV_8U, 1.0 / 257.0);  // rounds to the nearest 8-bit level
  return eight;
}

// PSNR of two 8-bit images of one size and layout, over every sample (psnr() of their tensors).
double psnr_8bit(const cv::Mat& a, const cv::Mat& b) {
  const double mse = cv::norm(a, b, cv::NORM_L2SQR) / (static_cast<double>(a.total()) * a.channels() * 255.0 * 255.0);
  return mse == 0 ? std::numeric_limits<double>::infinity() : -10 * std::log10(mse);
}

// The analysis of one image, done once; each quality then only multiplies, rounds and codes.
class Encoder {
 public:
  Encoder(LoadedCodec& codec, const cv::Mat& image, int tile) : codec_(codec), tile_(tile) {
    CodecModelImpl& m = *codec.model;
    channels_ = image.channels();
    if (channels_ != 1 && channels_ != 3)
      throw Error(ErrorKind::kInvalidData, "", std::to_string(channels_) + " channels; gray or colour images are coded");
    if (m.spec().channels == 1 && channels_ == 3)
      throw Error(ErrorKind::kInvalidData, "", "a colour image, and this codec model codes gray images only");
    bit_depth_ = image.depth() == CV_16U ? 16 : 8;
    x_ = eight_bit(image);
    height_ = x_.rows, width_ = x_.cols;
    y_ = tiled_analysis(m, x_, tile_);
  }

  torch::Tensor symbols(float quality) const {
    CodecModelImpl& m = *codec_.model;
    const torch::Tensor gain = m.gains_at(rate_point(m, quality).position);
    return m.prior->symbols(y_ * gain, m.prior_gain(gain)).contiguous();
  }

  // `quality` must be a coded_quality(): the file records it.
  std::vector<uint8_t> encode(float quality) const {
    const torch::Tensor s = symbols(quality);
    const size_t step = rate_point(*codec_.model, quality).step;
    const int32_t* p = s.data_ptr<int32_t>();
    const int64_t channels = s.size(1), plane = s.size(2) * s.size(3);
    RansEncoder enc;
    enc.reserve(static_cast<size_t>(channels * plane));
    // Channel-major, each channel under its own table (the trainer's real-bits count codes
    // the same order).
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t k = 0; k < plane; ++k) enc.put(p[c * plane + k], codec_.prior.table(step, static_cast<size_t>(c)));
    ContainerHeader h;
    h.width = static_cast<uint32_t>(width_);
    h.height = static_cast<uint32_t>(height_);
    h.channels = static_cast<uint8_t>(channels_);
    h.bit_depth = static_cast<uint8_t>(bit_depth_);
    h.quality = quality;
    h.model_id = codec_.info.id;
    h.streams.push_back({static_cast<uint32_t>(channels), static_cast<uint32_t>(s.size(2)), static_cast<uint32_t>(s.size(3))});
    return write_container(h, {enc.finish()});
  }

  double bpp(float quality) const {
    return 8.0 * static_cast<double>(encode(coded_quality(*codec_.model, quality)).size()) / pixels();
  }

  cv::Mat decoded(float quality) const {
    return synthesise(codec_, symbols(quality), quality, height_, width_, channels_, CV_8U, tile_);
  }
  double psnr_at(float quality) const { return psnr_8bit(decoded(quality), x_); }
  double psnr_of(const cv::Mat& decoded) const { return psnr_8bit(decoded, x_); }

  double pixels() const { return static_cast<double>(height_ * width_); }

 private:
  LoadedCodec& codec_;
  int tile_;
  int channels_ = 3, bit_depth_ = 8;
  int64_t height_ = 0, width_ = 0;
  cv::Mat x_;       // the image at 8 bits
  torch::Tensor y_;  // its analysis, 1 x M x h x w
};

}  // namespace

void validate(const CodecTarget& t) {
  const int set = (t.quality ? 1 : 0) + (t.bpp ? 1 : 0) + (t.psnr ? 1 : 0);
  if (set > 1) throw UsageError("give one of --quality, --bpp and --psnr");
  if (t.quality && !(*t.quality >= kMinQuality && *t.quality <= kMaxQuality))
    throw UsageError("--quality must be in 1..100, got " + std::to_string(*t.quality));
  if (t.bpp && !(*t.bpp > 0 && *t.bpp <= 64))
    throw UsageError("--bpp must be in (0, 64] bits per pixel, got " + std::to_string(*t.bpp));
  if (t.psnr && !(*t.psnr > 0 && *t.psnr <= 100))
    throw UsageError("--psnr must be in (0, 100] dB, got " + std::to_string(*t.psnr));
}

double rate_position(double quality, int rates) {
  if (!(quality >= kMinQuality && quality <= kMaxQuality))
    throw Error(ErrorKind::kInvalidData, "", "quality " + std::to_string(quality) + " outside 1..100");
  return (quality - kMinQuality) / (kMaxQuality - kMinQuality) * static_cast<double>(rates - 1);
}

CompressedImage compress_image(LoadedCodec& codec, const cv::Mat& image, const CodecTarget& target, int tile) {
  validate(target);
  torch::NoGradGuard no_grad;
  const Encoder enc(codec, image, tile);
  CompressedImage out;
  float q = static_cast<float>(target.quality.value_or(kDefaultQuality));
  const float lo_q = static_cast<float>(kMinQuality), hi_q = static_cast<float>(kMaxQuality);
  if (target.bpp) {
    // The highest quality whose file fits: bytes grow with quality (tested), so bisect on it
    // keeping bpp(lo) <= target < bpp(hi).
    const double goal = *target.bpp;
    out.encodings = 2;
    if (enc.bpp(hi_q) <= goal) {
      q = hi_q;
    } else if (enc.bpp(lo_q) > goal) {
      q = lo_q;
      out.target_reached = false;
    } else {
      float lo = lo_q, hi = hi_q;
      for (int i = 0; i < kBppSearchSteps; ++i, ++out.encodings) {
        const float mid = static_cast<float>((static_cast<double>(lo) + hi) / 2);
        (enc.bpp(mid) <= goal ? lo : hi) = mid;
      }
      q = lo;
    }
  } else if (target.psnr) {
    // The lowest quality that reaches it, keeping psnr(lo) < target <= psnr(hi).
    const double goal = *target.psnr;
    out.encodings = 2;
    if (enc.psnr_at(lo_q) >= goal) {
      q = lo_q;
    } else if (enc.psnr_at(hi_q) < goal) {
      q = hi_q;
      out.target_reached = false;
    } else {
      float lo = lo_q, hi = hi_q;
      for (int i = 0; i < kPsnrSearchSteps; ++i, ++out.encodings) {
        const float mid = static_cast<float>((static_cast<double>(lo) + hi) / 2);
        (enc.psnr_at(mid) >= goal ? hi : lo) = mid;
      }
      q = hi;
    }
  } else {
    out.encodings = 1;
  }
  q = coded_quality(*codec.model, q);
  out.quality = q;
  out.bytes = enc.encode(q);
  out.bpp = 8.0 * static_cast<double>(out.bytes.size()) / enc.pixels();
  out.decoded = enc.decoded(q);
  out.psnr = enc.psnr_of(out.decoded);
  return out;
}

DecompressedImage decompress_image(LoadedCodec& codec, const uint8_t* data, size_t size, const std::string& path,
                                   const DecodeOptions& options) {
  torch::NoGradGuard no_grad;
  const ParsedContainer file = read_container(data, size, path);
  check_model_id(file, codec.info.id, path);
  const ContainerHeader& h = file.header;
  const CodecSpec& spec = codec.model->spec();
  if (!(h.quality >= kMinQuality && h.quality <= kMaxQuality))
    throw Error(ErrorKind::kCorrupt, path, "quality " + std::to_string(h.quality) + " outside 1..100");
  if (spec.channels == 1 && h.channels == 3)
    throw Error(ErrorKind::kInvalidData, path, "a colour image, and this codec model decodes gray images only");
  const LatentShape want{static_cast<uint32_t>(spec.m), static_cast<uint32_t>(latent_side(h.height)),
                         static_cast<uint32_t>(latent_side(h.width))};
  if (h.streams.size() != 1 || !(h.streams[0] == want))
    throw Error(ErrorKind::kCorrupt, path,
                "latent streams do not fit a " + std::to_string(h.width) + "x" + std::to_string(h.height) +
                    " image (this model expects one stream of " + std::to_string(want.channels) + "x" +
                    std::to_string(want.height) + "x" + std::to_string(want.width) + ")");
  DecompressedImage out;
  out.header = h;
  out.symbols = torch::empty({want.channels, want.height, want.width}, torch::kInt);
  int32_t* p = out.symbols.data_ptr<int32_t>();
  const int64_t plane = int64_t{want.height} * want.width;
  try {
    const size_t step = rate_point(*codec.model, h.quality).step;
    RansDecoder dec(file.payloads[0].data(), file.payloads[0].size());
    for (int64_t c = 0; c < spec.m; ++c)
      for (int64_t k = 0; k < plane; ++k) p[c * plane + k] = dec.get(codec.prior.table(step, static_cast<size_t>(c)));
    dec.finish_check();
  } catch (const Error& e) {
    throw Error(e.kind(), path, "latent stream: " + e.reason());
  }
  out.image = synthesise(codec, out.symbols.unsqueeze(0), h.quality, h.height, h.width, h.channels,
                         h.bit_depth == 16 ? CV_16U : CV_8U, options.tile, options.keep_pixels ? &out.pixels : nullptr);
  return out;
}

torch::Tensor quantised_reconstruction(LoadedCodec& codec, const torch::Tensor& x, float quality) {
  torch::NoGradGuard no_grad;
  CodecModelImpl& m = *codec.model;
  const double r = rate_point(m, quality).position;
  const CodecOutput out = m.forward(to_channels(x, m.spec().channels).unsqueeze(0), m.gains_at(r), m.inverse_gains_at(r));
  return to_channels(out.x_hat[0], static_cast<int>(x.size(0))).clamp(0, 1);
}

ParsedContainer read_compressed_file(const std::string& path) {
  const std::string bytes = read_file(path);
  return read_container(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

bool is_compressed_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;  // a FIFO would block the read
  std::ifstream in(path, std::ios::binary);
  uint8_t head[8] = {};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  const auto n = static_cast<size_t>(in.gcount());
  return n == sizeof head && is_container(head, n);
}

}  // namespace bottleneck

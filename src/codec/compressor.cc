#include "codec/compressor.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <opencv2/core.hpp>

#include "codec/rans.h"
#include "image/image_io.h"
#include "image/metrics.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace bottleneck {
namespace {

using torch::indexing::Slice;

// Bisection steps of the searches: 20 halvings of 1..100 leave the bpp search within 1e-4
// quality (finer than a byte of most files); the PSNR search decodes at every step, so it
// stops at 12 (0.025 quality, far below a visible step).
constexpr int kBppSearchSteps = 20;
constexpr int kPsnrSearchSteps = 12;

int64_t latent_side(int64_t pixels) { return (pixels + CodecModelImpl::kStride - 1) / CodecModelImpl::kStride; }

// The synthesis of decoded symbols at quality q, cropped to the image and converted to its
// channels, clamped: one function for the decoder and the encoder's PSNR, so both see the same.
torch::Tensor synthesise(LoadedCodec& codec, const torch::Tensor& symbols, float quality, int64_t height, int64_t width,
                         int channels) {
  CodecModelImpl& m = *codec.model;
  const double r = rate_position(quality, m.spec().rates);
  torch::Tensor x_hat = m.synthesis(m.prior->dequantize(symbols) * m.inverse_gains_at(r))
                            .index({0, Slice(), Slice(0, height), Slice(0, width)});
  return to_channels(x_hat, channels).clamp(0, 1);
}

torch::Tensor to_8bit(const torch::Tensor& x) { return x.mul(255).round().div(255); }

// The image at 8 bits as the model's input: C x H x W in [0, 1], C = the image's channels.
torch::Tensor image_tensor(const cv::Mat& image) {
  if (image.depth() == CV_8U) return mat_to_tensor(image);
  if (image.depth() != CV_16U) throw Error(ErrorKind::kInvalidData, "", "samples must be 8 or 16 bits");
  cv::Mat eight;
  image.convertTo(eight, CV_8U, 1.0 / 257.0);  // rounds to the nearest 8-bit level
  return mat_to_tensor(eight);
}

// The analysis of one image, done once; each quality then only multiplies, rounds and codes.
class Encoder {
 public:
  Encoder(LoadedCodec& codec, const cv::Mat& image) : codec_(codec) {
    CodecModelImpl& m = *codec.model;
    channels_ = image.channels();
    if (channels_ != 1 && channels_ != 3)
      throw Error(ErrorKind::kInvalidData, "", std::to_string(channels_) + " channels; gray or colour images are coded");
    if (m.spec().channels == 1 && channels_ == 3)
      throw Error(ErrorKind::kInvalidData, "", "a colour image, and this codec model codes gray images only");
    bit_depth_ = image.depth() == CV_16U ? 16 : 8;
    x_ = image_tensor(image);
    height_ = x_.size(1), width_ = x_.size(2);
    y_ = m.analysis(CodecModelImpl::pad_to_stride(to_channels(x_, m.spec().channels).unsqueeze(0)));
  }

  torch::Tensor symbols(float quality) const {
    CodecModelImpl& m = *codec_.model;
    return m.prior->symbols(y_ * m.gains_at(rate_position(quality, m.spec().rates))).contiguous();
  }

  std::vector<uint8_t> encode(float quality) const {
    const torch::Tensor s = symbols(quality);
    const int32_t* p = s.data_ptr<int32_t>();
    const int64_t channels = s.size(1), plane = s.size(2) * s.size(3);
    RansEncoder enc;
    // Channel-major, each channel under its own table (the trainer's real-bits count codes
    // the same order).
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t k = 0; k < plane; ++k) enc.put(p[c * plane + k], codec_.prior.tables[static_cast<size_t>(c)]);
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

  double bpp(float quality) const { return 8.0 * static_cast<double>(encode(quality).size()) / pixels(); }

  torch::Tensor decoded(float quality) const {
    return to_8bit(synthesise(codec_, symbols(quality), quality, height_, width_, channels_));
  }
  double psnr_at(float quality) const { return psnr(decoded(quality), x_); }
  double psnr_of(const torch::Tensor& decoded) const { return psnr(decoded, x_); }

  double pixels() const { return static_cast<double>(height_ * width_); }

 private:
  LoadedCodec& codec_;
  int channels_ = 3, bit_depth_ = 8;
  int64_t height_ = 0, width_ = 0;
  torch::Tensor x_, y_;
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

CompressedImage compress_image(LoadedCodec& codec, const cv::Mat& image, const CodecTarget& target) {
  validate(target);
  torch::NoGradGuard no_grad;
  const Encoder enc(codec, image);
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
  out.quality = q;
  out.bytes = enc.encode(q);
  out.bpp = 8.0 * static_cast<double>(out.bytes.size()) / enc.pixels();
  out.decoded = enc.decoded(q);
  out.psnr = enc.psnr_of(out.decoded);
  return out;
}

DecompressedImage decompress_image(LoadedCodec& codec, const uint8_t* data, size_t size, const std::string& path) {
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
    RansDecoder dec(file.payloads[0].data(), file.payloads[0].size());
    for (int64_t c = 0; c < spec.m; ++c)
      for (int64_t k = 0; k < plane; ++k) p[c * plane + k] = dec.get(codec.prior.tables[static_cast<size_t>(c)]);
    dec.finish_check();
  } catch (const Error& e) {
    throw Error(e.kind(), path, "latent stream: " + e.reason());
  }
  out.pixels = synthesise(codec, out.symbols.unsqueeze(0), h.quality, h.height, h.width, h.channels);
  out.image = tensor_to_mat(out.pixels, h.bit_depth == 16 ? CV_16U : CV_8U);
  return out;
}

torch::Tensor quantised_reconstruction(LoadedCodec& codec, const torch::Tensor& x, float quality) {
  torch::NoGradGuard no_grad;
  CodecModelImpl& m = *codec.model;
  const double r = rate_position(quality, m.spec().rates);
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

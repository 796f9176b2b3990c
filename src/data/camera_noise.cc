#include "data/camera_noise.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "util/error.h"

namespace bottleneck {
namespace {

// XYZ -> camera matrices of four cameras (Canon 5D Mark II, Canon EOS 550D, Nikon D700, Sony
// A200), as Brooks et al. list them (from Adobe's DNG converter calibrations).
constexpr double kXyzToCam[4][9] = {
    {1.0234, -0.2969, -0.2266, -0.5625, 1.6328, -0.0469, -0.0703, 0.2188, 0.6406},
    {0.4913, -0.0541, -0.0202, -0.6130, 1.3513, 0.2906, -0.1564, 0.2151, 0.7183},
    {0.8380, -0.2630, -0.0639, -0.2887, 1.0725, 0.2496, -0.0627, 0.1427, 0.5438},
    {0.6596, -0.2079, -0.0562, -0.4782, 1.3016, 0.1933, -0.0970, 0.1581, 0.5181}};

// Linear sRGB (D65) -> XYZ.
constexpr double kRgbToXyz[9] = {0.4124564, 0.3575761, 0.1804375, 0.2126729, 0.7151522,
                                 0.0721750, 0.0193339, 0.1191920, 0.9503041};

constexpr double kGamma = 2.2;

std::array<double, 9> multiply(const double* a, const double* b) {
  std::array<double, 9> out{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) out[i * 3 + j] += a[i * 3 + k] * b[k * 3 + j];
  return out;
}

std::array<double, 9> inverse(const std::array<double, 9>& m) {
  const double a = m[0], b = m[1], c = m[2], d = m[3], e = m[4], f = m[5], g = m[6], h = m[7], i = m[8];
  const double det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  if (!(std::abs(det) > 1e-12)) throw Error("camera noise: singular colour matrix");
  return {(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det,
          (f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det,
          (d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det};
}

// Applies a 3x3 matrix to every pixel of a contiguous 3 x H x W float image, in double.
void apply_matrix(const std::array<double, 9>& m, const float* in, float* out, int64_t pixels) {
  for (int64_t p = 0; p < pixels; ++p) {
    const double r = in[p], g = in[pixels + p], b = in[2 * pixels + p];
    for (int c = 0; c < 3; ++c)
      out[c * pixels + p] = static_cast<float>(m[c * 3] * r + m[c * 3 + 1] * g + m[c * 3 + 2] * b);
  }
}

// The Bayer site colour of (y, x) in an RGGB mosaic: 0 red, 1 green, 2 blue.
inline int site(int64_t y, int64_t x) { return static_cast<int>((y & 1) + (x & 1)); }

std::vector<double> uniforms(int64_t n, at::Generator& gen) {
  at::Tensor u = at::empty({n}, at::TensorOptions().dtype(at::kDouble)).uniform_(0, 1, gen);
  return std::vector<double>(u.data_ptr<double>(), u.data_ptr<double>() + n);
}

at::Tensor checked_rgb(const at::Tensor& t, const char* what) {
  if (t.dim() != 3 || t.size(0) != 3) throw Error(std::string("camera noise: ") + what + " expects a 3 x H x W image");
  return t.to(at::kCPU, at::kFloat).contiguous();
}

}  // namespace

CameraDraw draw_camera(const CameraNoiseParams& params, at::Generator& gen) {
  // A fixed number of draws in a fixed order, whatever the parameters, so that a batch's noise
  // is a function of its seed alone.
  const std::vector<double> u = uniforms(16, gen);
  CameraDraw d;
  double weights[4], total = 0;
  for (int k = 0; k < 4; ++k) total += weights[k] = u[k];
  double xyz2cam[9] = {};
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 9; ++j) xyz2cam[j] += weights[k] / total * kXyzToCam[k][j];
  d.rgb2cam = multiply(xyz2cam, kRgbToXyz);
  for (int row = 0; row < 3; ++row) {
    const double sum = d.rgb2cam[row * 3] + d.rgb2cam[row * 3 + 1] + d.rgb2cam[row * 3 + 2];
    for (int j = 0; j < 3; ++j) d.rgb2cam[row * 3 + j] /= sum;
  }
  d.red_gain = 1.9 + 0.5 * u[4];
  d.blue_gain = 1.5 + 0.4 * u[5];
  // Box-Muller from two uniforms (u in (0, 1]: 1 - u avoids log(0)).
  auto normal = [&](int i) { return std::sqrt(-2 * std::log(1 - u[i])) * std::cos(2 * M_PI * u[i + 1]); };
  d.rgb_gain = 1 / std::clamp(0.8 + 0.1 * normal(6), 0.5, 1.1);
  if (params.shot_hi > 0) {
    const double lo = std::log(std::max(params.shot_lo, params.shot_hi * 1e-6)), hi = std::log(params.shot_hi);
    const double log_shot = lo + (hi - lo) * u[8];
    d.shot = std::exp(log_shot);
    d.read = std::exp(2.18 * log_shot + 1.20 + 0.26 * normal(9));
  }
  d.edge_aware = u[11] < 0.5;
  d.chroma_sigma = 3 * u[14];
  d.luma_blend = 0.5 * u[15];
  if (u[12] < params.jpeg_probability) d.jpeg_quality = 70 + std::min(28, static_cast<int>(u[13] * 29));
  return d;
}

at::Tensor unprocess(const at::Tensor& srgb, const CameraDraw& d) {
  at::Tensor x = checked_rgb(srgb, "unprocess");
  const int64_t pixels = x.size(1) * x.size(2);
  at::Tensor lin = at::empty_like(x);
  const float* in = x.data_ptr<float>();
  float* l = lin.data_ptr<float>();
  for (int64_t i = 0; i < 3 * pixels; ++i) {
    const double y = std::clamp(static_cast<double>(in[i]), 0.0, 1.0);
    const double t = 0.5 - std::sin(std::asin(1 - 2 * y) / 3);  // inverse of 3t^2 - 2t^3
    l[i] = static_cast<float>(std::pow(std::max(t, 1e-8), kGamma));
  }
  at::Tensor cam = at::empty_like(x);
  apply_matrix(d.rgb2cam, l, cam.data_ptr<float>(), pixels);
  // Inverse gains, kept at 1 near white so that highlights do not become a colour cast after
  // clipping (Brooks et al.'s safe inversion).
  const double gains[3] = {1 / (d.red_gain * d.rgb_gain), 1 / d.rgb_gain, 1 / (d.blue_gain * d.rgb_gain)};
  float* c = cam.data_ptr<float>();
  for (int64_t p = 0; p < pixels; ++p) {
    const double gray = (c[p] + c[pixels + p] + c[2 * pixels + p]) / 3.0;
    const double mask = std::pow(std::max(gray - 0.9, 0.0) / 0.1, 2);
    for (int k = 0; k < 3; ++k) {
      const double safe = std::max(mask + (1 - mask) * gains[k], gains[k]);
      c[k * pixels + p] = static_cast<float>(std::clamp(c[k * pixels + p] * safe, 0.0, 1.0));
    }
  }
  return cam;
}

at::Tensor mosaic_rggb(const at::Tensor& camera_rgb) {
  at::Tensor x = checked_rgb(camera_rgb, "mosaic");
  const int64_t h = x.size(1), w = x.size(2), pixels = h * w;
  at::Tensor bayer = at::empty({1, h, w}, x.options());
  const float* in = x.data_ptr<float>();
  float* out = bayer.data_ptr<float>();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t xx = 0; xx < w; ++xx) out[y * w + xx] = in[site(y, xx) * pixels + y * w + xx];
  return bayer;
}

at::Tensor add_sensor_noise(const at::Tensor& bayer, double shot, double read, at::Generator& gen) {
  at::Tensor b = bayer.to(at::kCPU, at::kFloat).contiguous();
  at::Tensor n = at::empty_like(b).normal_(0, 1, gen);
  at::Tensor out = at::empty_like(b);
  const float* in = b.data_ptr<float>();
  const float* z = n.data_ptr<float>();
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < b.numel(); ++i) {
    const double variance = std::max(shot * in[i] + read, 0.0);
    o[i] = static_cast<float>(in[i] + std::sqrt(variance) * z[i]);
  }
  return out;
}

at::Tensor process(const at::Tensor& bayer, const CameraDraw& d) {
  at::Tensor b = bayer.to(at::kCPU, at::kFloat).contiguous();
  if (b.dim() != 3 || b.size(0) != 1) throw Error("camera noise: process expects a 1 x H x W Bayer image");
  const int h = static_cast<int>(b.size(1)), w = static_cast<int>(b.size(2));
  const int64_t pixels = static_cast<int64_t>(h) * w;
  // White balance and exposure on the mosaic, clipped as a sensor's range clips, then 16-bit
  // for OpenCV's demosaicing (finer than any raw file's 12 to 14 bits).
  const double gains[3] = {d.red_gain * d.rgb_gain, d.rgb_gain, d.blue_gain * d.rgb_gain};
  cv::Mat raw(h, w, CV_16UC1);
  const float* in = b.data_ptr<float>();
  for (int y = 0; y < h; ++y) {
    auto* row = raw.ptr<uint16_t>(y);
    for (int x = 0; x < w; ++x) {
      const double v = std::clamp(in[y * w + x] * gains[site(y, x)], 0.0, 1.0);
      row[x] = static_cast<uint16_t>(std::lround(v * 65535));
    }
  }
  // OpenCV names a Bayer pattern by the second row's second and third sites: RGGB is "BG".
  cv::Mat rgb;
  cv::demosaicing(raw, rgb, d.edge_aware ? cv::COLOR_BayerBG2RGB_EA : cv::COLOR_BayerBG2RGB);
  at::Tensor cam = at::empty({3, h, w}, b.options());
  float* c = cam.data_ptr<float>();
  for (int y = 0; y < h; ++y) {
    const auto* row = rgb.ptr<uint16_t>(y);
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < 3; ++k) c[k * pixels + y * w + x] = row[3 * x + k] / 65535.0f;
  }
  at::Tensor out = at::empty_like(cam);
  apply_matrix(inverse(d.rgb2cam), c, out.data_ptr<float>(), pixels);
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < 3 * pixels; ++i) {
    const double lin = std::clamp(static_cast<double>(o[i]), 0.0, 1.0);
    const double t = std::pow(std::max(lin, 1e-8), 1 / kGamma);
    o[i] = static_cast<float>(3 * t * t - 2 * t * t * t);
  }
  return out;
}

at::Tensor reduce_noise(const at::Tensor& noise, double chroma_sigma, double luma_blend) {
  at::Tensor n = checked_rgb(noise, "noise reduction").clone();  // changed in place below
  if (chroma_sigma <= 0 && luma_blend <= 0) return n;
  const int h = static_cast<int>(n.size(1)), w = static_cast<int>(n.size(2));
  float* p = n.data_ptr<float>();
  cv::Mat r(h, w, CV_32F, p), g(h, w, CV_32F, p + static_cast<int64_t>(h) * w), b(h, w, CV_32F, p + 2 * static_cast<int64_t>(h) * w);
  cv::Mat y = 0.299 * r + 0.587 * g + 0.114 * b;
  cv::Mat cb = b - y, cr = r - y;
  if (chroma_sigma > 0) {
    cv::GaussianBlur(cb, cb, cv::Size(), chroma_sigma, chroma_sigma, cv::BORDER_REFLECT);
    cv::GaussianBlur(cr, cr, cv::Size(), chroma_sigma, chroma_sigma, cv::BORDER_REFLECT);
  }
  if (luma_blend > 0) {
    cv::Mat blurred;
    cv::GaussianBlur(y, blurred, cv::Size(), 1.0, 1.0, cv::BORDER_REFLECT);
    y = (1 - luma_blend) * y + luma_blend * blurred;
  }
  // Back to RGB in place (n owns the data, r/g/b view it).
  cv::Mat r2 = y + cr, b2 = y + cb;
  cv::Mat g2 = (y - 0.299 * r2 - 0.114 * b2) / 0.587;
  r2.copyTo(r);
  g2.copyTo(g);
  b2.copyTo(b);
  return n;
}

at::Tensor add_camera_noise(const at::Tensor& clean, const CameraNoiseParams& params, at::Generator& gen) {
  if (clean.dim() != 3 || (clean.size(0) != 1 && clean.size(0) != 3))
    throw Error("camera noise: expected a 1 x H x W or 3 x H x W image");
  const bool gray = clean.size(0) == 1;
  at::Tensor x = clean.to(at::kCPU, at::kFloat).contiguous();
  at::Tensor rgb = gray ? x.expand({3, x.size(1), x.size(2)}).contiguous() : x;

  const CameraDraw d = draw_camera(params, gen);
  const at::Tensor bayer = mosaic_rggb(unprocess(rgb, d));
  // Both are processed, so that only the noise (not the demosaicing) differs; the noise field is
  // drawn even at zero noise to keep the generator's stream independent of the parameters.
  const at::Tensor noisy_bayer = add_sensor_noise(bayer, d.shot, d.read, gen);
  at::Tensor y = rgb + reduce_noise(process(noisy_bayer, d) - process(bayer, d), d.chroma_sigma, d.luma_blend);
  if (gray) y = y.mean(0, /*keepdim=*/true);
  y = (y.clamp(0, 1) * 255).round_();

  if (d.jpeg_quality > 0) {
    const int h = static_cast<int>(y.size(1)), w = static_cast<int>(y.size(2)), ch = static_cast<int>(y.size(0));
    // Interleaved 8-bit, in OpenCV's BGR order for colour.
    at::Tensor hwc = (gray ? y : y.flip(0)).permute({1, 2, 0}).to(at::kByte).contiguous();
    cv::Mat img(h, w, ch == 1 ? CV_8UC1 : CV_8UC3, hwc.data_ptr<uint8_t>());
    std::vector<uint8_t> bytes;
    if (!cv::imencode(".jpg", img, bytes, {cv::IMWRITE_JPEG_QUALITY, d.jpeg_quality}))
      throw Error("camera noise: JPEG encoding failed");
    cv::Mat decoded = cv::imdecode(bytes, ch == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
    if (decoded.empty() || decoded.rows != h || decoded.cols != w) throw Error("camera noise: JPEG decoding failed");
    at::Tensor back = torch::from_blob(decoded.data, {h, w, ch}, at::kByte).permute({2, 0, 1}).to(at::kFloat);
    y = gray ? back : back.flip(0);
  }
  return (y / 255).contiguous();
}

}  // namespace bottleneck

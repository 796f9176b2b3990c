#include "data/noise.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <string_view>
#include <system_error>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "data/camera_noise.h"
#include "util/error.h"

namespace bottleneck {
namespace {

// The largest sigma (0-255 scale) we accept: well past anything meaningful (255 already drowns
// the signal), but a typo such as 2500 for 25.0 is caught.
constexpr double kMaxSigma255 = 1000;

constexpr const char* kAllForms =
    "none, gaussian:SIGMA, poisson:PHOTONS, poisson-gaussian:PHOTONS/SIGMA, saltpepper:FRACTION "
    "speckle:SIGMA or camera[:SHOT[/JPEG]] (each number may be a range LO-HI)";

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A finite number written in full (std::from_chars: locale-independent, no leading '+').
bool parse_number(std::string_view s, double* value) {
  s = trim(s);
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *value);
  return ec == std::errc() && ptr == end && std::isfinite(*value);
}

// "A" or "A-B" with 0 <= A <= B. The separating '-' is the first one that is neither leading nor
// part of an exponent ("1e-3"); a leading '-' (a negative number) is refused.
bool parse_range(std::string_view s, Range* range) {
  s = trim(s);
  size_t dash = std::string_view::npos;
  for (size_t i = 1; i < s.size(); ++i) {
    if (s[i] == '-' && s[i - 1] != 'e' && s[i - 1] != 'E') {
      dash = i;
      break;
    }
  }
  if (dash == std::string_view::npos) {
    if (!parse_number(s, &range->lo)) return false;
    range->hi = range->lo;
  } else if (!parse_number(s.substr(0, dash), &range->lo) ||
             !parse_number(s.substr(dash + 1), &range->hi)) {
    return false;
  }
  return range->lo >= 0 && range->lo <= range->hi;
}

// Shortest text that reads back to exactly the same double ("25", "0.1", "1e-05").
std::string format_number(double v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) throw Error("cannot format number");
  return std::string(buf, ptr);
}

std::string format_range(const Range& r) {
  if (r.lo == r.hi) return format_number(r.lo);
  return format_number(r.lo) + "-" + format_number(r.hi);
}

[[noreturn]] void fail(const std::string& text, const std::string& why) {
  throw UsageError("noise \"" + text + "\": " + why);
}

// Lower bound `min` (exclusive when min_exclusive), upper bound `max` (inclusive).
bool in_bounds(const Range& r, double min, bool min_exclusive, double max) {
  bool lo_ok = min_exclusive ? r.lo > min : r.lo >= min;
  return lo_ok && r.hi <= max;
}

// One uniform draw in [lo, hi] per image, as an N x 1 x 1 x 1 tensor of `dtype`.
at::Tensor per_image(const Range& r, int64_t n, at::Generator& gen, at::ScalarType dtype) {
  auto u = at::empty({n}, at::TensorOptions().dtype(at::kDouble)).uniform_(0, 1, gen);
  return (r.lo + (r.hi - r.lo) * u).to(dtype).view({n, 1, 1, 1});
}

}  // namespace

NoiseSpec parse_noise(const std::string& text) {
  std::string_view body = trim(text);
  if (body.empty()) fail(text, std::string("empty; expected ") + kAllForms);
  size_t colon = body.find(':');
  std::string kind = lower(trim(body.substr(0, colon)));
  std::string_view args =
      colon == std::string_view::npos ? std::string_view() : trim(body.substr(colon + 1));
  bool has_args = colon != std::string_view::npos;

  NoiseSpec spec;
  if (kind == "none") {
    if (has_args) fail(text, "expected none (no parameters)");
    spec.kind = NoiseKind::kNone;
  } else if (kind == "gaussian") {
    const std::string form =
        "expected gaussian:SIGMA or gaussian:LO-HI (SIGMA on the 0-255 scale, 0 to " +
        format_number(kMaxSigma255) + ")";
    spec.kind = NoiseKind::kGaussian;
    if (!has_args || !parse_range(args, &spec.a) || !in_bounds(spec.a, 0, false, kMaxSigma255))
      fail(text, form);
  } else if (kind == "poisson") {
    const std::string form =
        "expected poisson:PHOTONS or poisson:LO-HI (PHOTONS at white, > 0)";
    spec.kind = NoiseKind::kPoisson;
    if (!has_args || !parse_range(args, &spec.a) || !in_bounds(spec.a, 0, true, HUGE_VAL))
      fail(text, form);
  } else if (kind == "poisson-gaussian") {
    const std::string form =
        "expected poisson-gaussian:PHOTONS/SIGMA (PHOTONS at white > 0, read-noise SIGMA on the "
        "0-255 scale, 0 to " + format_number(kMaxSigma255) + "; each may be a range LO-HI)";
    spec.kind = NoiseKind::kPoissonGaussian;
    size_t slash = args.find('/');
    if (!has_args || slash == std::string_view::npos ||
        !parse_range(args.substr(0, slash), &spec.a) ||
        !parse_range(args.substr(slash + 1), &spec.b) ||
        !in_bounds(spec.a, 0, true, HUGE_VAL) || !in_bounds(spec.b, 0, false, kMaxSigma255))
      fail(text, form);
  } else if (kind == "saltpepper") {
    const std::string form =
        "expected saltpepper:FRACTION or saltpepper:LO-HI (FRACTION of pixels, 0 to 1)";
    spec.kind = NoiseKind::kSaltPepper;
    if (!has_args || !parse_range(args, &spec.a) || !in_bounds(spec.a, 0, false, 1))
      fail(text, form);
  } else if (kind == "speckle") {
    const std::string form =
        "expected speckle:SIGMA or speckle:LO-HI (unitless SIGMA >= 0, y = x + x n, "
        "n ~ N(0, SIGMA^2))";
    spec.kind = NoiseKind::kSpeckle;
    if (!has_args || !parse_range(args, &spec.a)) fail(text, form);
  } else if (kind == "camera") {
    const std::string form =
        "expected camera, or camera:SHOT or camera:SHOT/JPEG (SHOT: shot-noise gain or range "
        "LO-HI, 0 to 1, drawn log-uniformly; JPEG: fraction of images JPEG-compressed, 0 to 1)";
    spec.kind = NoiseKind::kCamera;
    const CameraNoiseParams defaults;
    spec.a = {defaults.shot_lo, defaults.shot_hi};
    spec.b = {defaults.jpeg_probability, defaults.jpeg_probability};
    if (has_args) {
      const size_t slash = args.find('/');
      if (!parse_range(args.substr(0, slash), &spec.a) || !in_bounds(spec.a, 0, false, 1) ||
          (spec.a.lo == 0 && spec.a.hi > 0))
        fail(text, form + (spec.a.lo == 0 && spec.a.hi > 0 ? "; a log-uniform range cannot start at 0" : ""));
      if (slash != std::string_view::npos &&
          (!parse_range(args.substr(slash + 1), &spec.b) || spec.b.lo != spec.b.hi || !in_bounds(spec.b, 0, false, 1)))
        fail(text, form);
    }
  } else {
    fail(text, "unknown kind \"" + kind + "\"; expected " + kAllForms);
  }
  return spec;
}

std::vector<NoiseSpec> parse_noise_list(const std::string& text) {
  std::vector<NoiseSpec> specs;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    specs.push_back(parse_noise(text.substr(start, comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return specs;
}

std::string to_string(const NoiseSpec& spec) {
  switch (spec.kind) {
    case NoiseKind::kNone:
      return "none";
    case NoiseKind::kGaussian:
      return "gaussian:" + format_range(spec.a);
    case NoiseKind::kPoisson:
      return "poisson:" + format_range(spec.a);
    case NoiseKind::kPoissonGaussian:
      return "poisson-gaussian:" + format_range(spec.a) + "/" + format_range(spec.b);
    case NoiseKind::kSaltPepper:
      return "saltpepper:" + format_range(spec.a);
    case NoiseKind::kSpeckle:
      return "speckle:" + format_range(spec.a);
    case NoiseKind::kCamera:
      return "camera:" + format_range(spec.a) + "/" + format_range(spec.b);
  }
  throw Error("unknown noise kind");
}

// Every random number comes, in a fixed order, from one CPU generator: the per-image parameters
// first (always both ranges, so a fixed value and a range consume the same stream), then the
// per-element draws. The CPU uniform_, normal_ and poisson kernels walk their output serially, so
// the result does not depend on the thread count; the noisy image is then moved to clean's device.
//
// Salt-and-pepper acts per element (each channel of a pixel independently, like skimage's
// random_noise): one uniform u per element, u < F/2 -> 0, F/2 <= u < F -> 1.
at::Tensor add_noise(const at::Tensor& clean, const NoiseSpec& spec, uint64_t seed) {
  if (!clean.defined() || (clean.dim() != 3 && clean.dim() != 4))
    throw UsageError("add_noise: expected a C x H x W or N x C x H x W tensor");
  if (!at::isFloatingType(clean.scalar_type()))
    throw UsageError("add_noise: expected a floating-point tensor");
  if (spec.kind == NoiseKind::kNone) return clean.clone();

  // float32 arithmetic unless the input is float64 (half and bfloat16 are computed in float32).
  const at::ScalarType dtype =
      clean.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor x = clean.dim() == 3 ? clean.unsqueeze(0) : clean;
  x = x.to(at::kCPU, dtype).contiguous();
  const int64_t n = x.size(0);

  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor a = per_image(spec.a, n, gen, dtype);
  at::Tensor b = per_image(spec.b, n, gen, dtype);

  at::Tensor y;
  switch (spec.kind) {
    case NoiseKind::kNone:
      break;
    case NoiseKind::kGaussian:
      y = x + (a / 255) * at::empty_like(x).normal_(0, 1, gen);
      break;
    case NoiseKind::kPoisson:
      y = at::poisson(x.clamp_min(0) * a, gen) / a;
      break;
    case NoiseKind::kPoissonGaussian:
      y = at::poisson(x.clamp_min(0) * a, gen) / a;
      y = y + (b / 255) * at::empty_like(x).normal_(0, 1, gen);
      break;
    case NoiseKind::kSaltPepper: {
      at::Tensor u = at::empty_like(x).uniform_(0, 1, gen);
      y = at::where(u < a / 2, at::zeros_like(x), x);
      y = at::where((u >= a / 2) & (u < a), at::ones_like(x), y);
      break;
    }
    case NoiseKind::kSpeckle:
      y = x + x * a * at::empty_like(x).normal_(0, 1, gen);
      break;
    case NoiseKind::kCamera: {
      if (x.size(1) != 1 && x.size(1) != 3) throw UsageError("camera noise needs 1- or 3-channel images");
      const CameraNoiseParams params{spec.a.lo, spec.a.hi, spec.b.lo};
      std::vector<at::Tensor> images;
      for (int64_t i = 0; i < n; ++i) images.push_back(add_camera_noise(x[i], params, gen));
      y = at::stack(images).to(dtype);
      break;
    }
  }
  if (clean.dim() == 3) y = y.squeeze(0);
  return y.to(clean.device(), clean.scalar_type());
}

}  // namespace bottleneck

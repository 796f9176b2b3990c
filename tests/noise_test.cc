#include "data/noise.h"

#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "util/error.h"
#include "test_util.h"

namespace bottleneck {
namespace {

void expect_range(const Range& r, double lo, double hi) {
  EXPECT_EQ(r.lo, lo);
  EXPECT_EQ(r.hi, hi);
}

bool same_spec(const NoiseSpec& x, const NoiseSpec& y) {
  return x.kind == y.kind && x.a.lo == y.a.lo && x.a.hi == y.a.hi && x.b.lo == y.b.lo &&
         x.b.hi == y.b.hi;
}

torch::Tensor constant(std::vector<int64_t> shape, double value) {
  return torch::full(shape, value, torch::kFloat);
}

// Sample standard deviation and mean, in double.
double sample_std(const torch::Tensor& t) { return t.to(torch::kDouble).std().item<double>(); }
double sample_mean(const torch::Tensor& t) { return t.to(torch::kDouble).mean().item<double>(); }

TEST(ParseNoise, EveryKindRoundTrips) {
  struct Case {
    std::string text, canonical;
    NoiseKind kind;
    double a_lo, a_hi, b_lo, b_hi;
  };
  const std::vector<Case> cases = {
      {"none", "none", NoiseKind::kNone, 0, 0, 0, 0},
      {"gaussian:25", "gaussian:25", NoiseKind::kGaussian, 25, 25, 0, 0},
      {"gaussian:0-55", "gaussian:0-55", NoiseKind::kGaussian, 0, 55, 0, 0},
      {"gaussian:12.5", "gaussian:12.5", NoiseKind::kGaussian, 12.5, 12.5, 0, 0},
      {"gaussian:25.000", "gaussian:25", NoiseKind::kGaussian, 25, 25, 0, 0},
      {"gaussian:7-7", "gaussian:7", NoiseKind::kGaussian, 7, 7, 0, 0},
      {"poisson:30", "poisson:30", NoiseKind::kPoisson, 30, 30, 0, 0},
      {"poisson:5-100", "poisson:5-100", NoiseKind::kPoisson, 5, 100, 0, 0},
      {"poisson-gaussian:30/5", "poisson-gaussian:30/5", NoiseKind::kPoissonGaussian, 30, 30, 5, 5},
      {"poisson-gaussian:10-50/0-10", "poisson-gaussian:10-50/0-10", NoiseKind::kPoissonGaussian,
       10, 50, 0, 10},
      {"saltpepper:0.1", "saltpepper:0.1", NoiseKind::kSaltPepper, 0.1, 0.1, 0, 0},
      {"saltpepper:0-1", "saltpepper:0-1", NoiseKind::kSaltPepper, 0, 1, 0, 0},
      {"saltpepper:1e-3", "saltpepper:0.001", NoiseKind::kSaltPepper, 1e-3, 1e-3, 0, 0},
      {"speckle:0.2", "speckle:0.2", NoiseKind::kSpeckle, 0.2, 0.2, 0, 0},
      {"speckle:0.05-0.3", "speckle:0.05-0.3", NoiseKind::kSpeckle, 0.05, 0.3, 0, 0},
      // Case-insensitive kinds, whitespace trimmed.
      {"  Gaussian : 15 ", "gaussian:15", NoiseKind::kGaussian, 15, 15, 0, 0},
      {"POISSON-Gaussian: 20 / 2-4", "poisson-gaussian:20/2-4", NoiseKind::kPoissonGaussian, 20,
       20, 2, 4},
      {" NONE ", "none", NoiseKind::kNone, 0, 0, 0, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    NoiseSpec spec = parse_noise(c.text);
    EXPECT_EQ(spec.kind, c.kind);
    expect_range(spec.a, c.a_lo, c.a_hi);
    expect_range(spec.b, c.b_lo, c.b_hi);
    EXPECT_EQ(to_string(spec), c.canonical);
    EXPECT_TRUE(same_spec(parse_noise(to_string(spec)), spec));
  }
}

TEST(ParseNoise, ToStringRoundTripsAwkwardNumbers) {
  for (double v : {0.1 + 0.2, 1.0 / 3, 1e-7, 123456.789, 2.5e-5}) {
    NoiseSpec spec;
    spec.kind = NoiseKind::kSpeckle;
    spec.a = {v, v * 2};
    SCOPED_TRACE(to_string(spec));
    EXPECT_TRUE(same_spec(parse_noise(to_string(spec)), spec));
  }
}

TEST(ParseNoise, MalformedInputsThrowUsageError) {
  const std::vector<std::string> bad = {
      "", "   ", "gaussian", "gaussian:", "gaussian:x", "gaussian:-3", "gaussian:5-2",
      "gaussian:1-2-3", "gaussian:nan", "gaussian:inf", "gaussian:25/3", "gaussian:5000",
      "gaussian:+5", "gaussian:25x", "poisson:0", "poisson:0-5", "poisson:-1", "poisson",
      "poisson-gaussian:30", "poisson-gaussian:30/", "poisson-gaussian:/5",
      "poisson-gaussian:0/5", "poisson-gaussian:30/-1", "saltpepper:1.5", "saltpepper:0.5-2",
      "saltpepper:-0.1", "speckle:-1", "speckle", "foo:1", "none:3", ":25", "gauss:25"};
  for (const std::string& text : bad) {
    SCOPED_TRACE("\"" + text + "\"");
    EXPECT_THROW(parse_noise(text), UsageError);
  }
}

TEST(ParseNoise, MessageQuotesTextAndExpectedForm) {
  try {
    parse_noise("gaussian:x");
    FAIL() << "no exception";
  } catch (const UsageError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("\"gaussian:x\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("gaussian:SIGMA or gaussian:LO-HI"), std::string::npos) << msg;
    EXPECT_NE(msg.find("0-255"), std::string::npos) << msg;
  }
  try {
    parse_noise("foo:1");
    FAIL() << "no exception";
  } catch (const UsageError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("\"foo:1\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("poisson-gaussian:PHOTONS/SIGMA"), std::string::npos) << msg;
  }
}

TEST(ParseNoise, ListSplitsOnCommas) {
  auto specs = parse_noise_list("gaussian:15, gaussian:25,poisson-gaussian:30/5 ,none");
  ASSERT_EQ(specs.size(), 4u);
  EXPECT_EQ(to_string(specs[0]), "gaussian:15");
  EXPECT_EQ(to_string(specs[1]), "gaussian:25");
  EXPECT_EQ(to_string(specs[2]), "poisson-gaussian:30/5");
  EXPECT_EQ(to_string(specs[3]), "none");
  EXPECT_EQ(parse_noise_list("speckle:0.1").size(), 1u);
  EXPECT_THROW(parse_noise_list("gaussian:15,,gaussian:25"), UsageError);
  EXPECT_THROW(parse_noise_list("gaussian:15,"), UsageError);
  EXPECT_THROW(parse_noise_list(""), UsageError);
  EXPECT_THROW(parse_noise_list("gaussian:15,foo"), UsageError);
}

TEST(AddNoise, GaussianStdMatchesSigma) {
  auto clean = constant({1, 1, 256, 256}, 0.5);
  auto noisy = add_noise(clean, parse_noise("gaussian:25"), 1);
  auto n = noisy - clean;
  EXPECT_NEAR(sample_std(n), 25.0 / 255, 0.02 * 25.0 / 255);
  EXPECT_NEAR(sample_mean(n), 0.0, 0.001);
  // Not clipped: near white, noisy values go past 1.
  auto bright = add_noise(constant({1, 1, 64, 64}, 0.9), parse_noise("gaussian:25"), 2);
  EXPECT_GT(bright.max().item<float>(), 1.0f);
}

TEST(AddNoise, BlindGaussianSpreadsSigmaPerImage) {
  const int64_t n = 64;
  auto clean = constant({n, 1, 64, 64}, 0.5);
  auto noise = add_noise(clean, parse_noise("gaussian:0-55"), 7) - clean;
  auto sigmas = noise.to(torch::kDouble).flatten(1).std(1) * 255;
  double lo = sigmas.min().item<double>(), hi = sigmas.max().item<double>();
  EXPECT_LT(lo, 15);
  EXPECT_GT(hi, 40);
  EXPECT_GE(lo, 0);
  // 4096 samples per image: the measured sigma is within ~1.1% (1 s.e.) of the drawn one.
  EXPECT_LE(hi, 55 * 1.05);
  // Each image's noise is one sigma: its two halves agree far better than the spread across images.
  auto halves = noise.to(torch::kDouble).view({n, 2, -1}).std(2) * 255;
  auto rel = ((halves.select(1, 0) - halves.select(1, 1)).abs() / (sigmas + 1e-9));
  EXPECT_LT(rel.max().item<double>(), 0.1);
}

TEST(AddNoise, PoissonPreservesMeanWithVarianceXOverP) {
  const double x = 0.3, photons = 30;
  auto clean = constant({1, 1, 256, 256}, x);
  auto noisy = add_noise(clean, parse_noise("poisson:30"), 3);
  EXPECT_NEAR(sample_mean(noisy), x, 0.002);
  double var = std::pow(sample_std(noisy), 2);
  EXPECT_NEAR(var, x / photons, 0.03 * x / photons);
  // Values are photon counts / P.
  auto counts = noisy.to(torch::kDouble) * photons;
  EXPECT_LT((counts - counts.round()).abs().max().item<double>(), 1e-3);
  EXPECT_GE(noisy.min().item<float>(), 0.0f);
  // A zero (or negative) pixel has rate 0: it stays 0.
  auto dark = add_noise(constant({1, 1, 16, 16}, -0.1), parse_noise("poisson:30"), 3);
  EXPECT_EQ(dark.abs().max().item<float>(), 0.0f);
}

TEST(AddNoise, PoissonGaussianVarianceAddsUp) {
  const double x = 0.5, photons = 40, sigma = 10.0 / 255;
  auto clean = constant({1, 1, 256, 256}, x);
  auto noisy = add_noise(clean, parse_noise("poisson-gaussian:40/10"), 4);
  EXPECT_NEAR(sample_mean(noisy), x, 0.002);
  double expected = x / photons + sigma * sigma;
  EXPECT_NEAR(std::pow(sample_std(noisy), 2), expected, 0.03 * expected);
}

TEST(AddNoise, SaltPepperFractionAndValues) {
  auto clean = constant({2, 3, 128, 128}, 0.5);
  auto noisy = add_noise(clean, parse_noise("saltpepper:0.1"), 5);
  auto changed = noisy != 0.5f;
  double fraction = changed.to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(fraction, 0.1, 0.005);
  auto zeros = (noisy == 0.0f).to(torch::kDouble).sum().item<double>();
  auto ones = (noisy == 1.0f).to(torch::kDouble).sum().item<double>();
  EXPECT_EQ(zeros + ones, changed.to(torch::kDouble).sum().item<double>());
  EXPECT_NEAR(zeros / (zeros + ones), 0.5, 0.03);
  // F = 0 changes nothing, F = 1 changes everything.
  EXPECT_TRUE(torch::equal(add_noise(clean, parse_noise("saltpepper:0"), 5), clean));
  auto all = add_noise(clean, parse_noise("saltpepper:1"), 5);
  EXPECT_EQ(((all == 0.0f) | (all == 1.0f)).all().item<bool>(), true);
}

TEST(AddNoise, SpeckleStdScalesWithIntensity) {
  const double s = 0.2;
  auto clean = torch::cat({constant({1, 1, 128, 256}, 0.25), constant({1, 1, 128, 256}, 0.75)}, 2);
  auto noisy = add_noise(clean, parse_noise("speckle:0.2"), 6);
  auto top = noisy.narrow(2, 0, 128), bottom = noisy.narrow(2, 128, 128);
  EXPECT_NEAR(sample_std(top), s * 0.25, 0.02 * s * 0.25);
  EXPECT_NEAR(sample_std(bottom), s * 0.75, 0.02 * s * 0.75);
  EXPECT_NEAR(sample_mean(top), 0.25, 0.001);
  EXPECT_NEAR(sample_mean(bottom), 0.75, 0.003);
  // Black stays black.
  EXPECT_EQ(add_noise(constant({1, 8, 8}, 0), parse_noise("speckle:0.5"), 6).abs().max().item<float>(),
            0.0f);
}

TEST(AddNoise, DeterministicInSeedAndThreadCount) {
  auto clean = test::synthetic_image(3, 64, 64, 11).unsqueeze(0).repeat({4, 1, 1, 1});
  const int threads = torch::get_num_threads();
  for (const char* text : {"gaussian:0-55", "poisson:5-60", "poisson-gaussian:10-50/0-10",
                           "saltpepper:0.05-0.2", "speckle:0.1-0.3"}) {
    SCOPED_TRACE(text);
    NoiseSpec spec = parse_noise(text);
    torch::set_num_threads(1);
    auto one = add_noise(clean, spec, 42);
    torch::set_num_threads(2);
    auto two = add_noise(clean, spec, 42);
    torch::set_num_threads(threads);
    auto again = add_noise(clean, spec, 42);
    auto other = add_noise(clean, spec, 43);
    EXPECT_TRUE(torch::equal(one, two));
    EXPECT_TRUE(torch::equal(one, again));
    EXPECT_FALSE(torch::equal(one, other));
    EXPECT_FALSE(torch::equal(one, clean));
  }
  torch::set_num_threads(threads);
}

TEST(AddNoise, ShapeDtypeAndDevicePreserved) {
  auto chw = test::synthetic_image(3, 20, 30, 1);
  for (const char* text : {"gaussian:25", "poisson:30", "poisson-gaussian:30/5", "saltpepper:0.1",
                           "speckle:0.2", "none"}) {
    SCOPED_TRACE(text);
    NoiseSpec spec = parse_noise(text);
    auto y3 = add_noise(chw, spec, 9);
    EXPECT_EQ(y3.sizes(), chw.sizes());
    EXPECT_EQ(y3.scalar_type(), torch::kFloat);
    // A C x H x W image is noised like a batch of one.
    EXPECT_TRUE(torch::equal(y3, add_noise(chw.unsqueeze(0), spec, 9).squeeze(0)));
    auto batch = chw.unsqueeze(0).repeat({2, 1, 1, 1}).to(torch::kDouble);
    auto y4 = add_noise(batch, spec, 9);
    EXPECT_EQ(y4.sizes(), batch.sizes());
    EXPECT_EQ(y4.scalar_type(), torch::kDouble);
    EXPECT_EQ(y4.device(), batch.device());
  }
}

TEST(AddNoise, NoneReturnsEqualCopy) {
  auto clean = test::synthetic_image(1, 16, 16, 2);
  auto out = add_noise(clean, parse_noise("none"), 1);
  EXPECT_TRUE(torch::equal(out, clean));
  out.fill_(0);
  EXPECT_FALSE(torch::equal(out, clean));  // a copy, not a view
}

TEST(AddNoise, RejectsBadInputs) {
  auto spec = parse_noise("gaussian:25");
  EXPECT_THROW(add_noise(torch::zeros({16, 16}), spec, 1), UsageError);
  EXPECT_THROW(add_noise(torch::zeros({1, 1, 1, 16, 16}), spec, 1), UsageError);
  EXPECT_THROW(add_noise(torch::zeros({1, 16, 16}, torch::kInt), spec, 1), UsageError);
}

TEST(AddNoise, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto clean = test::synthetic_image(3, 32, 32, 4).unsqueeze(0).repeat({2, 1, 1, 1});
  for (const char* text : {"gaussian:0-55", "poisson-gaussian:30/5", "saltpepper:0.1"}) {
    SCOPED_TRACE(text);
    auto spec = parse_noise(text);
    auto gpu = add_noise(clean.cuda(), spec, 5);
    EXPECT_TRUE(gpu.is_cuda());
    EXPECT_TRUE(torch::equal(gpu.cpu(), add_noise(clean, spec, 5)));
  }
}

}  // namespace
}  // namespace bottleneck

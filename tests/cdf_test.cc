// CDF tables: quantisation (valid, optimal, deterministic, pinned cases), validation messages,
// and the serialised form (pinned bytes, round trips, every damaged form refused).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <tuple>
#include <random>
#include <vector>

#include "codec/cdf.h"
#include "codec/rans.h"
#include "util/error.h"

using namespace bottleneck;

namespace {

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

std::vector<uint32_t> freqs_of(const CdfTable& t) {
  std::vector<uint32_t> f;
  for (size_t i = 0; i + 1 < t.cdf.size(); ++i) f.push_back(t.cdf[i + 1] - t.cdf[i]);
  return f;
}

// A discretised Gaussian over integers mu-r..mu+r, the shape of a hyperprior's conditionals.
std::vector<double> gaussian_pmf(double sigma, int radius) {
  std::vector<double> pmf;
  for (int v = -radius; v <= radius; ++v)
    pmf.push_back(0.5 * (std::erfc(-(v + 0.5) / (sigma * std::sqrt(2.0))) - std::erfc(-(v - 0.5) / (sigma * std::sqrt(2.0)))));
  return pmf;
}

// Masses of every kind: smooth, spiky, with zeros and tiny values, summing under or over 1.
std::vector<double> random_pmf(std::mt19937_64& rng) {
  const size_t m = 1 + rng() % (rng() % 4 == 0 ? 3000 : 60);
  std::vector<double> pmf(m);
  for (double& p : pmf) {
    switch (rng() % 5) {
      case 0: p = 0; break;
      case 1: p = 1e-12 * uniform01(rng); break;
      case 2: p = std::pow(uniform01(rng), 8); break;
      default: p = uniform01(rng); break;
    }
  }
  double sum = 0;
  for (double p : pmf) sum += p;
  const double scale = sum > 0 ? (0.9 + 0.2 * uniform01(rng)) / sum : 1;
  for (double& p : pmf) p *= scale;
  return pmf;
}

std::vector<double> with_tail(std::vector<double> pmf) {
  double sum = 0;
  for (double p : pmf) sum += p;
  pmf.push_back(std::max(0.0, 1.0 - sum));
  return pmf;
}

double entropy_bits(const std::vector<double>& masses) {
  double total = 0, h = 0;
  for (double p : masses) total += p;
  for (double p : masses)
    if (p > 0) h -= p / total * std::log2(p / total);
  return h;
}

// The frequencies of the obvious rule, as CompressAI's pmf_to_quantized_cdf does it: round each
// mass, raise zeros to 1, and settle the sum on the largest symbols.
CdfTable naive_table(const std::vector<double>& pmf) {
  const std::vector<double> masses = with_tail(pmf);
  double total = 0;
  for (double p : masses) total += p;
  std::vector<int64_t> f;
  for (double p : masses) f.push_back(std::max<int64_t>(1, std::llround(p / total * kCdfTotal)));
  int64_t sum = 0;
  for (int64_t x : f) sum += x;
  while (sum != kCdfTotal) {
    const size_t top = std::max_element(f.begin(), f.end()) - f.begin();
    const int64_t step = sum > kCdfTotal ? -1 : 1;
    if (f[top] + step < 1) break;
    f[top] += step, sum += step;
  }
  CdfTable t;
  t.cdf.push_back(0);
  for (int64_t x : f) t.cdf.push_back(t.cdf.back() + static_cast<uint32_t>(x));
  return t;
}

// make_cdf_table's rule the slow way: every symbol from 1, each count to the largest gain.
std::vector<uint32_t> reference_freqs(const std::vector<double>& pmf) {
  const std::vector<double> masses = with_tail(pmf);
  std::vector<uint32_t> f(masses.size(), 1);
  std::vector<double> gain;
  for (double p : masses) gain.push_back(p * std::log1p(1.0));
  for (size_t left = kCdfTotal - masses.size(); left > 0; --left) {
    const size_t best = std::max_element(gain.begin(), gain.end()) - gain.begin();  // first of equals
    ++f[best];
    gain[best] = masses[best] * std::log1p(1.0 / f[best]);
  }
  return f;
}

void expect_error(ErrorKind kind, const std::string& message_part, const std::function<void()>& f) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing: " << message_part;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(message_part), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Cdf, PinnedQuantisations) {
  // 65535 counts for three masses 2:1:1 (the escape has no tail and keeps 1): 32767.5 and
  // 16383.75 ideally; 32767/16384/16384 codes them 2e-10 bits cheaper than 32768/16384/16383.
  EXPECT_EQ(freqs_of(make_cdf_table({0.5, 0.25, 0.25}, 0)), (std::vector<uint32_t>{32767, 16384, 16384, 1}));
  // Ties go to the lower index.
  EXPECT_EQ(freqs_of(make_cdf_table({0.25, 0.25, 0.25, 0.25}, 0)),
            (std::vector<uint32_t>{16384, 16384, 16384, 16383, 1}));
  // Zero masses keep one count each.
  EXPECT_EQ(freqs_of(make_cdf_table({1, 0, 0}, 0)), (std::vector<uint32_t>{65533, 1, 1, 1}));
  // The escape gets the tail: 0.1 of 65536 is 6553.6.
  const std::vector<uint32_t> tail = freqs_of(make_cdf_table({0.3, 0.3, 0.3}, 0));
  EXPECT_EQ(tail.size(), 4u);
  EXPECT_NEAR(tail[3], 6553.6, 1);
  // One value and the escape; the largest table.
  EXPECT_EQ(freqs_of(make_cdf_table({1}, 5)), (std::vector<uint32_t>{65535, 1}));
  EXPECT_EQ(freqs_of(make_cdf_table(std::vector<double>(65535, 1.0 / 65535), 0)), std::vector<uint32_t>(65536, 1));
  EXPECT_EQ(make_cdf_table({1}, -7).offset, -7);
}

TEST(Cdf, RandomMassesGiveValidOptimalDeterministicTables) {
  std::mt19937_64 rng(1);
  for (int round = 0; round < 300; ++round) {
    const std::vector<double> pmf = random_pmf(rng);
    const int32_t offset = -static_cast<int32_t>(rng() % 1000);
    const CdfTable t = make_cdf_table(pmf, offset);
    ASSERT_EQ(cdf_table_problem(t), "") << round;
    ASSERT_EQ(t.num_symbols(), pmf.size() + 1);
    EXPECT_EQ(t.cdf.back(), kCdfTotal);
    EXPECT_EQ(t.offset, offset);
    const std::vector<uint32_t> f = freqs_of(t);
    for (uint32_t x : f) EXPECT_GE(x, 1u);

    // Optimal: no single count moved from one symbol to another shortens the expected code.
    // For a separable concave objective that local condition is the global optimum.
    const std::vector<double> masses = with_tail(pmf);
    double best_gain = 0, least_loss = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < f.size(); ++i) {
      best_gain = std::max(best_gain, masses[i] * std::log1p(1.0 / f[i]));
      if (f[i] > 1) least_loss = std::min(least_loss, masses[i] * -std::log1p(-1.0 / f[i]));
    }
    EXPECT_LE(best_gain, least_loss * (1 + 1e-12)) << round;

    // Never worse than the obvious rule, and the same table every time.
    EXPECT_LE(cdf_table_cost_bits(t, pmf), cdf_table_cost_bits(naive_table(pmf), pmf) + 1e-12) << round;
    const CdfTable again = make_cdf_table(pmf, offset);
    EXPECT_EQ(again.cdf, t.cdf);
    // The head start from a lower bound changes nothing.
    if (pmf.size() <= 60 && round % 4 == 0) {
      EXPECT_EQ(f, reference_freqs(pmf)) << round;
    }
  }
}

TEST(Cdf, QuantisationCostsLittleAgainstTheEntropy) {
  // KL(p || q) in bits per symbol for latent-like Gaussians cut at 6 sigma (the tail goes to the
  // escape). Most of it is the floor of one count for the symbols far out: 2r + 2 of them.
  for (auto [sigma, radius, bound] : std::vector<std::tuple<double, int, double>>{
           {0.2, 2, 8e-5}, {0.7, 5, 1.3e-4}, {3, 19, 3e-4}, {20, 121, 2e-3}, {100, 601, 1.1e-2}}) {
    const std::vector<double> pmf = gaussian_pmf(sigma, radius);
    const CdfTable t = make_cdf_table(pmf, -radius);
    const double kl = cdf_table_cost_bits(t, pmf) - entropy_bits(with_tail(pmf));
    const double naive = cdf_table_cost_bits(naive_table(pmf), pmf) - entropy_bits(with_tail(pmf));
    EXPECT_GE(kl, 0);
    EXPECT_LT(kl, bound) << "sigma " << sigma;
    EXPECT_LE(kl, naive + 1e-15);
    std::printf("sigma %g: entropy %.4f, KL %.3g bits/symbol (naive rule %.3g)\n", sigma,
                entropy_bits(with_tail(pmf)), kl, naive);
  }
}

TEST(Cdf, BadMassesAreRefused) {
  expect_error(ErrorKind::kInvalidData, "empty", [] { make_cdf_table({}, 0); });
  expect_error(ErrorKind::kInvalidData, "pmf[1]", [] { make_cdf_table({0.5, std::nan("")}, 0); });
  expect_error(ErrorKind::kInvalidData, "pmf[0]", [] { make_cdf_table({-0.1}, 0); });
  expect_error(ErrorKind::kInvalidData, "pmf[0]", [] { make_cdf_table({HUGE_VAL}, 0); });
  expect_error(ErrorKind::kInvalidData, "sums to infinity", [] { make_cdf_table({1e308, 1e308}, 0); });
  expect_error(ErrorKind::kInvalidData, "65536 masses", [] { make_cdf_table(std::vector<double>(65536, 1e-5), 0); });
  expect_error(ErrorKind::kInvalidData, "overflow int32", [] { make_cdf_table({0.5, 0.5}, INT32_MAX); });
  EXPECT_EQ(make_cdf_table({1}, INT32_MAX).offset, INT32_MAX);
}

TEST(Cdf, ValidationNamesTheProblem) {
  auto table = [](std::vector<uint32_t> cdf, int32_t offset = 0) {
    CdfTable t;
    t.cdf = std::move(cdf);
    t.offset = offset;
    return t;
  };
  EXPECT_EQ(cdf_table_problem(table({0, 100, 65536})), "");
  EXPECT_EQ(cdf_table_problem(table({0, 65536})), "has 2 cdf entries, needs at least 3 (a value and the escape)");
  EXPECT_EQ(cdf_table_problem(table({1, 100, 65536})), "cdf[0] is 1, not 0");
  EXPECT_EQ(cdf_table_problem(table({0, 100, 65535})), "cdf[2] is 65535, not 65536");
  EXPECT_EQ(cdf_table_problem(table({0, 100, 100, 65536})), "symbol 1 has frequency 0 or less (cdf[1] = 100, cdf[2] = 100)");
  EXPECT_EQ(cdf_table_problem(table({0, 200, 100, 65536})), "symbol 1 has frequency 0 or less (cdf[1] = 200, cdf[2] = 100)");
  EXPECT_EQ(cdf_table_problem(table({0, 1, 2, 65536}, INT32_MAX - 1)), "");
  EXPECT_EQ(cdf_table_problem(table({0, 1, 2, 65536}, INT32_MAX)), "values 2147483647..2147483648 overflow int32");
  std::vector<uint32_t> too_many(65538);
  for (size_t i = 0; i < too_many.size(); ++i) too_many[i] = static_cast<uint32_t>(i);
  EXPECT_EQ(cdf_table_problem(table(too_many)), "has 65537 symbols, at most 65536");
  expect_error(ErrorKind::kCorrupt, "model.bin: CDF table: cdf[0] is 1", [&] { validate_cdf_table(table({1, 2, 65536}), "model.bin"); });
}

TEST(Cdf, SerialisedBytesArePinned) {
  const CdfTable t = make_cdf_table({0.5, 0.25, 0.25}, -1);
  const std::vector<uint8_t> bytes = serialize_cdf_tables({t});
  EXPECT_EQ(bytes, (std::vector<uint8_t>{
                       16, 0, 0, 0,               // precision
                       1, 0, 0, 0,                // count
                       0xff, 0xff, 0xff, 0xff,    // offset -1
                       4, 0, 0, 0,                // symbols
                       0xff, 0x7f, 0, 0x40, 0, 0x40, 1, 0}));  // 32767, 16384, 16384, 1
  EXPECT_EQ(serialize_cdf_tables({}), (std::vector<uint8_t>{16, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(Cdf, SerialisationRoundTrips) {
  std::mt19937_64 rng(2);
  std::vector<CdfTable> tables;
  for (int i = 0; i < 40; ++i) tables.push_back(make_cdf_table(random_pmf(rng), static_cast<int32_t>(rng())  % 100000));
  tables.push_back(make_cdf_table({1}, INT32_MAX));
  tables.push_back(make_cdf_table({1}, INT32_MIN));
  tables.push_back(make_cdf_table(std::vector<double>(65535, 1), -32768));
  const std::vector<uint8_t> bytes = serialize_cdf_tables(tables);
  const std::vector<CdfTable> back = parse_cdf_tables(bytes.data(), bytes.size(), "m");
  ASSERT_EQ(back.size(), tables.size());
  for (size_t i = 0; i < tables.size(); ++i) {
    EXPECT_EQ(back[i].cdf, tables[i].cdf) << i;
    EXPECT_EQ(back[i].offset, tables[i].offset) << i;
  }
  const std::vector<uint8_t> none = serialize_cdf_tables({});
  EXPECT_TRUE(parse_cdf_tables(none.data(), none.size(), "m").empty());
}

TEST(Cdf, DamagedSerialisationsAreRefused) {
  const std::vector<uint8_t> good = serialize_cdf_tables({make_cdf_table({0.5, 0.25, 0.25}, -1), make_cdf_table({1}, 0)});
  for (size_t size = 0; size < good.size(); ++size)
    expect_error(ErrorKind::kCorrupt, "m: CDF tables: truncated", [&] { parse_cdf_tables(good.data(), size, "m"); });
  std::vector<uint8_t> b = good;
  b.push_back(0);
  expect_error(ErrorKind::kCorrupt, "1 bytes after the last table", [&] { parse_cdf_tables(b.data(), b.size(), "m"); });

  auto patched = [&](size_t at, std::vector<uint8_t> bytes) {
    std::vector<uint8_t> p = good;
    std::copy(bytes.begin(), bytes.end(), p.begin() + static_cast<std::ptrdiff_t>(at));
    return p;
  };
  const std::vector<std::tuple<size_t, std::vector<uint8_t>, ErrorKind, std::string>> cases = {
      {0, {15}, ErrorKind::kUnsupported, "m: CDF tables have 15-bit precision; this build codes with 16"},
      {4, {0x01, 0x00, 0x01, 0x00}, ErrorKind::kCorrupt, "count 65537 exceeds 65536"},
      {4, {0xff, 0xff, 0xff, 0xff}, ErrorKind::kCorrupt, "count 4294967295"},
      {4, {3}, ErrorKind::kCorrupt, "truncated: table 2 needs 8 bytes, 0 remain"},
      {12, {1}, ErrorKind::kCorrupt, "table 0 has 1 symbols"},
      {12, {0xff, 0xff, 0xff, 0xff}, ErrorKind::kCorrupt, "table 0 has 4294967295 symbols"},
      {12, {0x20}, ErrorKind::kCorrupt, "truncated: table 0's 32 frequencies needs 64 bytes, 20 remain"},
      {16, {0, 0}, ErrorKind::kCorrupt, "table 0: symbol 0 has frequency 0"},
      {16, {0xfe, 0x7f}, ErrorKind::kCorrupt, "table 0: frequencies sum to 65535, not 65536"},
      {8, {0xff, 0xff, 0xff, 0x7f}, ErrorKind::kCorrupt, "table 0: values 2147483647..2147483649 overflow int32"},
  };
  for (const auto& [at, bytes, kind, message] : cases) {
    const std::vector<uint8_t> p = patched(at, bytes);
    expect_error(kind, message, [&] { parse_cdf_tables(p.data(), p.size(), "m"); });
  }
  // Garbage is refused, never crashes.
  std::mt19937_64 rng(3);
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> g = good;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) g[rng() % g.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    try {
      for (const CdfTable& t : parse_cdf_tables(g.data(), g.size(), "m")) EXPECT_EQ(cdf_table_problem(t), "");
    } catch (const Error& e) {
      EXPECT_TRUE(e.kind() == ErrorKind::kCorrupt || e.kind() == ErrorKind::kUnsupported) << e.what();
    }
  }
}

TEST(Cdf, InvalidTablesAreNotSerialised) {
  CdfTable bad;
  bad.cdf = {0, 5, 5, 65536};
  expect_error(ErrorKind::kInvalidData, "CDF table 1: symbol 1 has frequency 0",
               [&] { serialize_cdf_tables({make_cdf_table({1}, 0), bad}); });
}

// The rANS coder: exact round trips over many tables and streams, escapes to the int32 ends,
// code length against the entropy, a pinned byte stream, and damaged input that must throw
// kCorrupt and nothing else.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "codec/rans.h"
#include "util/error.h"

using namespace bottleneck;

namespace {

// Only mt19937_64's raw output is specified by the standard (distributions are not), so tests
// draw through these for the same streams everywhere.
uint64_t below(std::mt19937_64& rng, uint64_t n) { return rng() % n; }

CdfTable table_of(const std::vector<uint32_t>& freqs, int32_t offset) {
  CdfTable t;
  t.offset = offset;
  t.cdf.push_back(0);
  for (uint32_t f : freqs) t.cdf.push_back(t.cdf.back() + f);
  return t;
}

// A table of n symbols with distinct random cut points, so frequencies range from 1 upwards.
CdfTable random_table(std::mt19937_64& rng, uint32_t n, int32_t offset) {
  std::set<uint32_t> cuts;
  while (cuts.size() < n - 1) cuts.insert(1 + static_cast<uint32_t>(below(rng, kCdfTotal - 1)));
  CdfTable t;
  t.offset = offset;
  t.cdf.push_back(0);
  t.cdf.insert(t.cdf.end(), cuts.begin(), cuts.end());
  t.cdf.push_back(kCdfTotal);
  return t;
}

// A value outside the table's range: usually near it (as real escapes are), sometimes anywhere.
int32_t escape_value(std::mt19937_64& rng, const CdfTable& t) {
  const int64_t lo = t.offset, hi = lo + t.num_symbols() - 2;
  for (;;) {
    int64_t v;
    switch (below(rng, 4)) {
      case 0: v = lo - 1 - static_cast<int64_t>(below(rng, 40)); break;
      case 1: v = hi + 1 + static_cast<int64_t>(below(rng, 40)); break;
      case 2: v = below(rng, 2) ? INT32_MIN + static_cast<int64_t>(below(rng, 3)) : INT32_MAX - static_cast<int64_t>(below(rng, 3)); break;
      default: v = static_cast<int32_t>(static_cast<uint32_t>(rng())); break;
    }
    if ((v < lo || v > hi) && v >= INT32_MIN && v <= INT32_MAX) return static_cast<int32_t>(v);
  }
}

// A value drawn from the table's own distribution (escapes included).
int32_t draw(std::mt19937_64& rng, const CdfTable& t) {
  const uint32_t slot = static_cast<uint32_t>(below(rng, kCdfTotal));
  const uint32_t s = static_cast<uint32_t>(std::upper_bound(t.cdf.begin(), t.cdf.end(), slot) - t.cdf.begin()) - 1;
  return s + 1 < t.num_symbols() ? t.offset + static_cast<int32_t>(s) : escape_value(rng, t);
}

std::vector<uint8_t> encode(const std::vector<int32_t>& values, const std::vector<const CdfTable*>& tables) {
  RansEncoder enc;
  for (size_t i = 0; i < values.size(); ++i) enc.put(values[i], *tables[i]);
  return enc.finish();
}

std::vector<int32_t> decode(const std::vector<uint8_t>& bytes, const std::vector<const CdfTable*>& tables) {
  RansDecoder dec(bytes.data(), bytes.size());
  std::vector<int32_t> values;
  for (const CdfTable* t : tables) values.push_back(dec.get(*t));
  dec.finish_check();
  EXPECT_EQ(dec.bytes_consumed(), bytes.size());
  return values;
}

// Decodes as the codec would and reports whether the stream was refused; anything but a kCorrupt
// Error fails the test. `decoded` gets what was decoded when it was not refused.
bool refused(const uint8_t* data, size_t size, const std::vector<const CdfTable*>& tables,
             std::vector<int32_t>* decoded = nullptr) {
  try {
    RansDecoder dec(data, size);
    std::vector<int32_t> values;
    for (const CdfTable* t : tables) values.push_back(dec.get(*t));
    dec.finish_check();
    if (decoded) *decoded = values;
    return false;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorrupt) << e.what();
    EXPECT_NE(std::string(e.what()).find("rANS stream: "), std::string::npos) << e.what();
    return true;
  }
}

// Ideal code length of values under their tables, escapes' bypass bits included.
double ideal_bits(const std::vector<int32_t>& values, const std::vector<const CdfTable*>& tables) {
  double bits = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    const CdfTable& t = *tables[i];
    const int64_t index = int64_t{values[i]} - t.offset;
    const int64_t escape = t.num_symbols() - 1;
    const int64_t s = index >= 0 && index < escape ? index : escape;
    bits -= std::log2(double(t.cdf[s + 1] - t.cdf[s]) / kCdfTotal);
    if (s == escape) {
      const int64_t hi = int64_t{t.offset} + escape - 1;
      const uint64_t v = values[i] < t.offset ? 2 * uint64_t(t.offset - int64_t{values[i]}) : 2 * uint64_t(values[i] - hi) - 1;
      const int b = 63 - __builtin_clzll(v);
      bits += kEscapeLengthChunkBits * (b / 15 + 1) + b;
    }
  }
  return bits;
}

uint64_t fnv1a(const std::vector<uint8_t>& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

}  // namespace

TEST(Rans, PrecisionIsSixteenBits) {
  EXPECT_EQ(kCdfPrecision, 16);
  EXPECT_EQ(kCdfTotal, 65536u);
}

TEST(Rans, EmptyStreamIsTheInitialState) {
  RansEncoder enc;
  const std::vector<uint8_t> bytes = enc.finish();
  EXPECT_EQ(bytes, (std::vector<uint8_t>{0, 0, 0, 0x80, 0, 0, 0, 0}));  // 2^31, little-endian
  RansDecoder dec(bytes.data(), bytes.size());
  EXPECT_NO_THROW(dec.finish_check());
}

TEST(Rans, RoundTripsRandomStreamsOverRandomTables) {
  std::mt19937_64 rng(1);
  const uint32_t sizes[] = {2, 3, 4, 5, 17, 64, 255, 256, 1000, 4097};
  int64_t symbols = 0;
  for (int round = 0; round < 300; ++round) {
    // A few tables per stream, as a codec uses one per channel.
    std::vector<CdfTable> tables;
    for (int k = 0; k < 4; ++k) {
      const uint32_t n = below(rng, 3) ? sizes[below(rng, 10)] : 2 + static_cast<uint32_t>(below(rng, 600));
      const int32_t offset = below(rng, 5) == 0 ? INT32_MIN + static_cast<int32_t>(below(rng, 10))
                                                : -static_cast<int32_t>(below(rng, 2 * n + 1));
      tables.push_back(random_table(rng, n, offset));
    }
    const size_t length = below(rng, 8) == 0 ? below(rng, 3) : below(rng, 3000);
    std::vector<int32_t> values;
    std::vector<const CdfTable*> used;
    for (size_t i = 0; i < length; ++i) {
      used.push_back(&tables[below(rng, tables.size())]);
      values.push_back(draw(rng, *used.back()));
    }
    const std::vector<uint8_t> bytes = encode(values, used);
    ASSERT_EQ(bytes.size() % 4, 0u);
    ASSERT_EQ(decode(bytes, used), values) << "round " << round;
    symbols += static_cast<int64_t>(length);
  }
  EXPECT_GT(symbols, 300000);
}

TEST(Rans, OneValuePlusEscapeTables) {
  std::mt19937_64 rng(2);
  for (const auto& freqs : std::vector<std::vector<uint32_t>>{{65535, 1}, {1, 65535}, {32768, 32768}}) {
    const CdfTable t = table_of(freqs, 7);
    std::vector<int32_t> values;
    for (int i = 0; i < 20000; ++i) values.push_back(below(rng, 3) ? 7 : escape_value(rng, t));
    const std::vector<const CdfTable*> used(values.size(), &t);
    EXPECT_EQ(decode(encode(values, used), used), values);
  }
}

TEST(Rans, ExtremelySkewedTable) {
  std::mt19937_64 rng(3);
  const CdfTable t = table_of({1, 65534, 1}, -1);  // values -1 (freq 1) and 0 (65534), escape 1
  std::vector<int32_t> values;
  for (int i = 0; i < 200000; ++i) values.push_back(draw(rng, t));
  for (int i = 0; i < 50; ++i) values[below(rng, values.size())] = below(rng, 2) ? -1 : escape_value(rng, t);
  const std::vector<const CdfTable*> used(values.size(), &t);
  const std::vector<uint8_t> bytes = encode(values, used);
  EXPECT_EQ(decode(bytes, used), values);
  EXPECT_LE(bytes.size() * 8.0, ideal_bits(values, used) * 1.01 + 128);
}

TEST(Rans, UniformTableOf65536Symbols) {
  std::mt19937_64 rng(4);
  const CdfTable t = table_of(std::vector<uint32_t>(65536, 1), -32768);  // values -32768..32766
  std::vector<int32_t> values;
  for (int i = 0; i < 100000; ++i) values.push_back(-32768 + static_cast<int32_t>(below(rng, 65535)));
  values.push_back(32767);  // the first value past the range: escaped
  values.push_back(INT32_MIN);
  const std::vector<const CdfTable*> used(values.size(), &t);
  const std::vector<uint8_t> bytes = encode(values, used);
  EXPECT_EQ(decode(bytes, used), values);
  EXPECT_NEAR(static_cast<double>(bytes.size()), 200000.0, 20.0);  // 16 bits a symbol
}

TEST(Rans, EscapesReachTheInt32Ends) {
  const std::vector<int32_t> values = {INT32_MIN, INT32_MIN + 1, INT32_MAX, INT32_MAX - 1, 0, -1, 1, 1 << 30, -(1 << 30)};
  for (uint32_t n : {2u, 3u, 300u}) {
    for (int64_t offset : {int64_t{INT32_MIN}, int64_t{INT32_MAX} - (n - 2), int64_t{0}, int64_t{-5}}) {
      CdfTable t = table_of(std::vector<uint32_t>(n - 1, 1), static_cast<int32_t>(offset));
      t.cdf.push_back(kCdfTotal);  // the escape takes the rest
      const std::vector<const CdfTable*> used(values.size(), &t);
      EXPECT_EQ(decode(encode(values, used), used), values) << "n " << n << " offset " << offset;
    }
  }
}

TEST(Rans, EscapeCodeLengths) {
  // Escape at probability 1/2 costs 1 bit; one past the range adds 4 bits, one below 5;
  // INT32_MIN against a table at INT32_MAX adds 12 + 32.
  const CdfTable t = table_of({32768, 32768}, 10);
  for (auto [value, bits] : std::vector<std::pair<int32_t, int>>{{11, 5}, {9, 6}, {12, 6}, {8, 7}}) {
    const std::vector<int32_t> values(8000, value);
    const std::vector<const CdfTable*> used(values.size(), &t);
    const std::vector<uint8_t> bytes = encode(values, used);
    EXPECT_NEAR(static_cast<double>(bytes.size()), 8 + 8000.0 * bits / 8, 8) << value;
    EXPECT_EQ(decode(bytes, used), values);
  }
  const CdfTable top = table_of({32768, 32768}, INT32_MAX);
  const std::vector<int32_t> values(800, INT32_MIN);
  const std::vector<const CdfTable*> used(values.size(), &top);
  EXPECT_NEAR(static_cast<double>(encode(values, used).size()), 8 + 800.0 * 45 / 8, 8);
}

TEST(Rans, LongStreamCostsItsEntropy) {
  std::mt19937_64 rng(5);
  // A Laplacian-like table over -30..30 as a latent channel's, escape at frequency 3.
  std::vector<uint32_t> freqs;
  uint32_t sum = 0;
  for (int v = -30; v <= 30; ++v) freqs.push_back(1 + static_cast<uint32_t>(12000 * std::exp(-std::abs(v) / 2.5)));
  for (uint32_t f : freqs) sum += f;
  freqs[30] += kCdfTotal - 3 - sum;
  freqs.push_back(3);
  const CdfTable t = table_of(freqs, -30);
  std::vector<int32_t> values;
  for (int i = 0; i < 1000000; ++i) values.push_back(draw(rng, t));
  const std::vector<const CdfTable*> used(values.size(), &t);
  const std::vector<uint8_t> bytes = encode(values, used);
  const double ideal = ideal_bits(values, used);
  EXPECT_LE(bytes.size() * 8.0, ideal * 1.01 + 128);
  EXPECT_GE(bytes.size() * 8.0, ideal - 64);
  EXPECT_EQ(decode(bytes, used), values);
  std::printf("1e6 symbols: %zu bytes, ideal %.1f bytes (+%.4f%%)\n", bytes.size(), ideal / 8,
              100 * (bytes.size() * 8 / ideal - 1));
}

TEST(Rans, EncoderIsReusableAfterFinish) {
  std::mt19937_64 rng(6);
  const CdfTable t = random_table(rng, 20, -10);
  std::vector<int32_t> a, b;
  for (int i = 0; i < 1000; ++i) a.push_back(draw(rng, t)), b.push_back(draw(rng, t));
  RansEncoder enc;
  for (int32_t v : a) enc.put(v, t);
  enc.finish();
  for (int32_t v : b) enc.put(v, t);
  EXPECT_EQ(enc.finish(), encode(b, std::vector<const CdfTable*>(b.size(), &t)));
}

TEST(Rans, BytesArePinned) {
  // The format is the bytes: a change here breaks every file written before it.
  std::mt19937_64 rng(7);
  const CdfTable t = random_table(rng, 50, -25);
  std::vector<int32_t> values;
  for (int i = 0; i < 5000; ++i) values.push_back(draw(rng, t));
  values.push_back(INT32_MIN);
  values.push_back(INT32_MAX);
  const std::vector<uint8_t> bytes = encode(values, std::vector<const CdfTable*>(values.size(), &t));
  EXPECT_EQ(bytes.size(), 3288u);
  EXPECT_EQ(fnv1a(bytes), 1493436872397734672ull);
}

TEST(Rans, TruncatedStreamsAreRefused) {
  std::mt19937_64 rng(8);
  const CdfTable t = random_table(rng, 40, -20);
  std::vector<int32_t> values;
  for (int i = 0; i < 2000; ++i) values.push_back(draw(rng, t));
  const std::vector<const CdfTable*> used(values.size(), &t);
  const std::vector<uint8_t> bytes = encode(values, used);
  for (size_t size = 0; size < bytes.size(); ++size) EXPECT_TRUE(refused(bytes.data(), size, used)) << size;
}

TEST(Rans, TrailingBytesAreRefused) {
  const CdfTable t = table_of({30000, 30000, 5536}, 0);
  const std::vector<int32_t> values = {0, 1, 0, 5, -3};
  const std::vector<const CdfTable*> used(values.size(), &t);
  std::vector<uint8_t> bytes = encode(values, used);
  bytes.insert(bytes.end(), 4, 0);
  EXPECT_TRUE(refused(bytes.data(), bytes.size(), used));
  bytes.push_back(0);
  EXPECT_TRUE(refused(bytes.data(), bytes.size(), used));
  try {
    RansDecoder dec(bytes.data(), bytes.size() - 1);
    for (const CdfTable* u : used) dec.get(*u);
    dec.finish_check();
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "rANS stream: 4 bytes left over after the last symbol");
  }
}

TEST(Rans, EveryBitFlipIsRefusedOrChangesTheValues) {
  // Decoding inverts encoding step by step, so a damaged stream that passes every check is the
  // encoding of other values; it must never crash or come back with the original values.
  std::mt19937_64 rng(9);
  std::vector<CdfTable> tables = {random_table(rng, 30, -15), table_of({65000, 535, 1}, 0)};
  std::vector<int32_t> values;
  std::vector<const CdfTable*> used;
  for (int i = 0; i < 600; ++i) {
    used.push_back(&tables[i % 2]);
    values.push_back(draw(rng, *used.back()));
  }
  values[17] = INT32_MIN;  // some escape bits to flip too
  std::vector<uint8_t> bytes = encode(values, used);
  int refusals = 0, flips = 0;
  for (size_t bit = 0; bit < bytes.size() * 8; ++bit, ++flips) {
    bytes[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
    std::vector<int32_t> decoded;
    if (refused(bytes.data(), bytes.size(), used, &decoded))
      ++refusals;
    else
      EXPECT_NE(decoded, values) << "bit " << bit;
    bytes[bit / 8] ^= static_cast<uint8_t>(1 << (bit % 8));
  }
  // The final-state check catches most flips but not all: the container's CRC is the integrity check.
  EXPECT_EQ(flips, 2368);
  EXPECT_EQ(refusals, 1875);
}

TEST(Rans, GarbageIsRefusedWithoutCrashing) {
  std::mt19937_64 rng(10);
  const std::vector<CdfTable> tables = {random_table(rng, 2, 0), random_table(rng, 300, -150),
                                        table_of({1, 65534, 1}, 0), table_of({65535, 1}, 3),
                                        table_of(std::vector<uint32_t>(65536, 1), 0)};
  int accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> garbage(below(rng, 4) ? 4 * below(rng, 50) : below(rng, 200));
    for (uint8_t& b : garbage) b = static_cast<uint8_t>(rng());
    std::vector<const CdfTable*> used(below(rng, 400));
    for (const CdfTable*& t : used) t = &tables[below(rng, tables.size())];
    accepted += !refused(garbage.data(), garbage.size(), used);
  }
  EXPECT_LE(accepted, 1);
}

TEST(Rans, InvalidTablesAreRefused) {
  // Too few entries, wrong ends, a zero frequency, a frequency of 2^16 (no escape left).
  const uint8_t state[8] = {0, 0, 0, 0x80, 0, 0, 0, 0};
  for (const CdfTable& bad : {CdfTable{}, table_of({65536}, 0), table_of({100, 200}, 0), table_of({0, 65536}, 0)}) {
    for (int32_t v : {0, 1, 5}) {
      RansEncoder enc;
      try {
        enc.put(v, bad);
        ADD_FAILURE() << "put " << v;
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kFailed) << e.what();
      }
    }
    RansDecoder dec(state, sizeof state);
    try {
      dec.get(bad);
      ADD_FAILURE();
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kFailed) << e.what();
    }
  }
}

#include "codec/rans.h"

#include <algorithm>
#include <string>

#include "util/error.h"

namespace bottleneck {
namespace {

// The state lives in [kRansLow, kRansLow << 32). With 32-bit words the lower bound must be at
// most 2^31 for the upper one to fit 64 bits, and at 2^31 a decode step never needs more than one
// word: it leaves x >= x >> kCdfPrecision >= 2^15, and one word lifts that to >= 2^47.
constexpr uint64_t kRansLow = uint64_t{1} << 31;
constexpr int kWordBits = 32;
constexpr int kBypassChunkBits = 16;
constexpr uint32_t kEscapeLengthContinue = (1u << kEscapeLengthChunkBits) - 1;

[[noreturn]] void corrupt(const std::string& reason) {
  throw Error(ErrorKind::kCorrupt, "", "rANS stream: " + reason);
}

[[noreturn]] void bad_table(const std::string& reason) {
  throw Error(ErrorKind::kFailed, "", "invalid CDF table given to the rANS coder: " + reason);
}

// O(1) checks that keep the coder's arithmetic in range whatever the table; full validation
// (strictly increasing) is cdf_table_problem's, done once when a table is made or read.
void check_table(const CdfTable& table) {
  const size_t size = table.cdf.size();
  if (size < 3 || size > kMaxCdfSymbols + 1) bad_table(std::to_string(size) + " cdf entries");
  if (table.cdf.front() != 0 || table.cdf.back() != kCdfTotal) bad_table("wrong first or last cdf entry");
}

uint32_t floor_log2(uint64_t v) {
  uint32_t b = 0;
  while (v >>= 1) ++b;
  return b;
}

uint64_t load_le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void store_le(uint64_t v, int bytes, std::vector<uint8_t>& out) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

}  // namespace

void RansEncoder::push_bypass(uint32_t value, int bits) {
  ops_.push_back(Op{static_cast<uint16_t>(value), 1, static_cast<uint8_t>(bits)});
}

void RansEncoder::put(int32_t value, const CdfTable& table) {
  check_table(table);
  const std::vector<uint32_t>& cdf = table.cdf;
  const int64_t escape = table.num_symbols() - 1;
  const int64_t lo = table.offset, hi = lo + escape - 1;
  const int64_t index = int64_t{value} - lo;
  const int64_t symbol = (index >= 0 && index < escape) ? index : escape;
  const uint32_t start = cdf[symbol], end = cdf[symbol + 1];
  // A valid table has at least two symbols, so 1 <= frequency < kCdfTotal, which fits the Op.
  if (end <= start || end - start >= kCdfTotal)
    bad_table("symbol " + std::to_string(symbol) + " has frequency " + std::to_string(int64_t{end} - start));
  ops_.push_back(Op{static_cast<uint16_t>(start), static_cast<uint16_t>(end - start),
                    static_cast<uint8_t>(kCdfPrecision)});
  if (symbol != escape) return;

  // Distances from the range interleave below (even v) and above (odd v), nearest first.
  const uint64_t v = value < lo ? 2 * static_cast<uint64_t>(lo - value)
                                : 2 * static_cast<uint64_t>(value - hi) - 1;
  const uint32_t b = floor_log2(v);
  uint32_t left = b;
  for (; left >= kEscapeLengthContinue; left -= kEscapeLengthContinue)
    push_bypass(kEscapeLengthContinue, kEscapeLengthChunkBits);
  push_bypass(left, kEscapeLengthChunkBits);
  for (uint32_t shift = 0; shift < b; shift += kBypassChunkBits) {
    const int bits = static_cast<int>(std::min<uint32_t>(kBypassChunkBits, b - shift));
    push_bypass(static_cast<uint32_t>((v >> shift) & ((uint64_t{1} << bits) - 1)), bits);
  }
}

std::vector<uint8_t> RansEncoder::finish() {
  // Words come out in the reverse of the order the decoder wants them.
  std::vector<uint32_t> words;
  words.reserve(ops_.size() / 2 + 1);
  uint64_t x = kRansLow;
  for (auto it = ops_.rbegin(); it != ops_.rend(); ++it) {
    const uint64_t freq = it->freq;
    const uint64_t x_max = ((kRansLow >> it->bits) << kWordBits) * freq;
    if (x >= x_max) {
      words.push_back(static_cast<uint32_t>(x));
      x >>= kWordBits;
    }
    x = ((x / freq) << it->bits) + (x % freq) + it->start;
  }
  ops_.clear();

  std::vector<uint8_t> out;
  out.reserve(8 + 4 * words.size());
  store_le(x, 8, out);
  for (auto it = words.rbegin(); it != words.rend(); ++it) store_le(*it, 4, out);
  return out;
}

RansDecoder::RansDecoder(const uint8_t* data, size_t size) : data_(data), size_(size) {
  if (size < 8) corrupt(std::to_string(size) + " bytes, shorter than its 8-byte state");
  if (size % 4 != 0) corrupt("length " + std::to_string(size) + " is not a multiple of 4");
  x_ = load_le(data, 8);
  pos_ = 8;
  if (x_ < kRansLow || x_ >= (kRansLow << kWordBits)) corrupt("initial state out of range");
}

void RansDecoder::advance(uint32_t start, uint32_t freq, int bits) {
  x_ = freq * (x_ >> bits) + (x_ & ((uint64_t{1} << bits) - 1)) - start;
  if (x_ < kRansLow) {
    if (size_ - pos_ < 4) corrupt("truncated: the data ran out before the last symbol");
    x_ = (x_ << kWordBits) | load_le(data_ + pos_, 4);
    pos_ += 4;
  }
}

uint32_t RansDecoder::get_bypass(int bits) {
  const uint32_t v = peek(bits);
  advance(v, 1, bits);
  return v;
}

int32_t RansDecoder::get(const CdfTable& table) {
  check_table(table);
  const std::vector<uint32_t>& cdf = table.cdf;
  const uint32_t n = table.num_symbols();
  const uint32_t slot = peek(kCdfPrecision);
  // The symbol whose range holds the slot: the last i with cdf[i] <= slot. cdf[0] = 0 <= slot
  // and cdf[n] > slot bound it to 0..n-1 for a valid table; the min and the range test below
  // keep an invalid one from indexing out of bounds.
  const uint32_t i = std::min<uint32_t>(
      static_cast<uint32_t>(std::upper_bound(cdf.begin(), cdf.end(), slot) - cdf.begin()) - 1, n - 1);
  const uint32_t start = cdf[i], end = cdf[i + 1];
  if (slot < start || slot >= end || end - start >= kCdfTotal)
    bad_table("not increasing at symbol " + std::to_string(i));
  advance(start, end - start, kCdfPrecision);

  const int64_t lo = table.offset, hi = lo + static_cast<int64_t>(n) - 2;
  int64_t value;
  if (i + 1 < n) {
    value = lo + i;
  } else {
    uint32_t b = 0;
    for (;;) {
      const uint32_t chunk = get_bypass(kEscapeLengthChunkBits);
      b += chunk;
      if (b > kMaxEscapeBitLength) corrupt("escape code longer than " + std::to_string(kMaxEscapeBitLength) + " bits");
      if (chunk != kEscapeLengthContinue) break;
    }
    uint64_t v = uint64_t{1} << b;
    for (uint32_t shift = 0; shift < b; shift += kBypassChunkBits) {
      const int bits = static_cast<int>(std::min<uint32_t>(kBypassChunkBits, b - shift));
      v |= uint64_t{get_bypass(bits)} << shift;
    }
    value = (v & 1) ? hi + static_cast<int64_t>((v + 1) / 2) : lo - static_cast<int64_t>(v / 2);
  }
  if (value < INT32_MIN || value > INT32_MAX) corrupt("decoded value " + std::to_string(value) + " beyond int32");
  return static_cast<int32_t>(value);
}

void RansDecoder::finish_check() const {
  if (pos_ != size_)
    corrupt(std::to_string(size_ - pos_) + " bytes left over after the last symbol");
  if (x_ != kRansLow) corrupt("final state mismatch (damaged data)");
}

}  // namespace bottleneck

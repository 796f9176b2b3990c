#pragma once

// Range asymmetric numeral systems (rANS, J. Duda 2013) entropy coder for the learned codec's
// quantised latents. Torch-free and bit-exact: integer arithmetic only, bytes little-endian, so a
// stream written on one platform decodes on every other.
//
// The coder: a 64-bit state x kept in [2^31, 2^63), renormalised in 32-bit words (one word at
// most per symbol), probabilities as integers out of 2^kCdfPrecision. Encoding runs backwards
// over the symbols (rANS is last-in first-out), so RansEncoder only buffers them and codes
// everything in finish(); the decoder then reads forwards. The byte layout is in
// docs/formats.md ("rANS stream").

#include <cstddef>
#include <cstdint>
#include <vector>

namespace bottleneck {

// Probabilities are frequencies out of kCdfTotal. 16 bits is the largest precision whose
// frequencies (at most kCdfTotal - 1, there being always an escape symbol) fit the uint16 of the
// serialised tables; quantising a latent-like distribution to it costs 1e-4 to 1e-2 bits a
// symbol over its entropy, mostly the one-count floor of improbable symbols (cdf_test).
constexpr int kCdfPrecision = 16;
static_assert(kCdfPrecision >= 2 && kCdfPrecision <= 16,
              "frequencies are stored in 16 bits and a 32-bit renormalisation needs precision <= 31");
constexpr uint32_t kCdfTotal = uint32_t{1} << kCdfPrecision;

// The most symbols a table can have (escape included): every frequency is at least 1.
constexpr uint32_t kMaxCdfSymbols = kCdfTotal;

// A quantised distribution over n symbols: symbol i, 0 <= i < n, has frequency cdf[i+1] - cdf[i].
// Symbols 0..n-2 stand for the values offset..offset+n-2; symbol n-1 is the escape, which codes
// any other int32 (followed by bypass bits, see RansEncoder::put).
// A valid table (cdf_table_problem in codec/cdf.h returns "") has 2 <= n <= kMaxCdfSymbols,
// cdf[0] = 0 < cdf[1] < ... < cdf[n] = kCdfTotal, and offset + n - 2 <= INT32_MAX.
// make_cdf_table and parse_cdf_tables only return valid tables.
struct CdfTable {
  std::vector<uint32_t> cdf;  // n + 1 entries
  int32_t offset = 0;         // the value symbol 0 stands for
  uint32_t num_symbols() const { return cdf.empty() ? 0 : static_cast<uint32_t>(cdf.size() - 1); }
};

// Escaped values: the escape symbol, then the value's distance from the table's range in
// Elias-gamma form with bypass bits (uniform, coded in the same state): the bit length b of
// v = 2 * (distance - 1) + (below ? 1 : 0) + 1 as 4-bit chunks (15 means "15 more, go on"),
// then the b bits of v under its leading 1 in chunks of up to 16, low chunk first. A value one
// step outside the range costs the escape plus 4 or 5 bits; INT32_MIN against a table at
// INT32_MAX costs the escape plus 12 + 32 bits.
constexpr int kEscapeLengthChunkBits = 4;
constexpr uint32_t kMaxEscapeBitLength = 32;  // v < 2^33: distances reach 2^32 - 1

// Collects symbols, codes them on finish(). Not thread-safe; reusable after finish().
class RansEncoder {
 public:
  // Queues `value` under `table`, which must stay valid (cdf_table_problem) but need not outlive
  // the call. A value outside offset..offset+n-2 is escaped. Throws Error(kFailed) when the
  // table is visibly invalid (too few entries, wrong ends, a zero frequency on the path taken).
  void put(int32_t value, const CdfTable& table);

  // Room for `symbols` more puts without reallocation (6 bytes each; escapes take more).
  void reserve(size_t symbols) { ops_.reserve(ops_.size() + symbols); }

  // Codes everything queued and returns the stream (at least 8 bytes: the final state; a
  // multiple of 4). Clears the queue.
  std::vector<uint8_t> finish();

 private:
  // One coding step: a slot range [start, start + freq) out of 2^bits.
  struct Op {
    uint16_t start;
    uint16_t freq;
    uint8_t bits;
  };
  void push_bypass(uint32_t value, int bits);

  std::vector<Op> ops_;
};

// Reads a stream written by RansEncoder, symbol by symbol with the same tables in the same
// order. The bytes must outlive the decoder. Damaged input never reads out of bounds, never
// loops and never crashes: it throws Error(kCorrupt, "", reason) — in the constructor (bad length
// or state), in get() (data exhausted, an escaped value beyond int32) or in finish_check().
class RansDecoder {
 public:
  RansDecoder(const uint8_t* data, size_t size);

  // The next value, decoded under `table` (the one the encoder used for it). Throws
  // Error(kFailed) for a visibly invalid table, as put() does.
  int32_t get(const CdfTable& table);

  // Call after the last get(): throws kCorrupt unless the stream was consumed exactly and the
  // state returned to the encoder's initial one. That catches every truncation and most
  // garbage, but not damage as such: rANS absorbs a flipped bit into the decoded values and
  // resynchronises, so ~1 in 5 single-bit flips decode "cleanly" to other values (rans_test).
  // Integrity is the container's CRC's job.
  void finish_check() const;

  size_t bytes_consumed() const { return pos_; }

 private:
  uint32_t peek(int bits) const { return static_cast<uint32_t>(x_ & ((uint64_t{1} << bits) - 1)); }
  void advance(uint32_t start, uint32_t freq, int bits);
  uint32_t get_bypass(int bits);

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  uint64_t x_ = 0;
};

}  // namespace bottleneck

#pragma once

// The integer tables the rANS coder codes with: built from a model's probability masses when a
// model is frozen for compression, checked when read back, and (de)serialised for the model file.
// Floating point appears only here, in building a table; coding uses the frozen integers, so
// encoder and decoder agree bit for bit however the table was made.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "codec/rans.h"

namespace bottleneck {

// The most tables parse_cdf_tables accepts: a bound on what a damaged count can make it loop
// over (CompressAI's models use a few hundred: one per latent channel, one per scale).
constexpr uint32_t kMaxCdfTables = 65536;

// The table for values offset .. offset + m - 1 with masses pmf[0..m-1] (finite, >= 0, need not
// be normalised) plus the escape symbol, which gets the tail mass max(0, 1 - sum(pmf)).
// Frequencies minimise the expected code length sum_i p_i * -log2(f_i / 2^16) (p normalised over
// the m + 1 symbols) among integer f_i >= 1 summing to 2^16: every symbol starts at 1 and each of
// the remaining counts goes, one at a time, to the symbol gaining the most, p_i * ln(1 + 1/f_i)
// (greedy allocation is exact for this separable concave objective), ties to the lower index.
// So a symbol of mass 0 keeps frequency 1 and costs the others only what its one count takes.
// Deterministic for given input on a platform; across platforms the tie-breaks could differ if
// libm's log1p rounded differently, which is why tables are frozen into the model file rather
// than rebuilt by the decoder.
// Throws Error(kInvalidData) for an empty or too long pmf (m + 1 > kMaxCdfSymbols), a
// negative or non-finite mass, or a range beyond int32.
CdfTable make_cdf_table(const std::vector<double>& pmf, int32_t offset);

// Expected code length in bits per symbol of coding values distributed as `pmf` (with its tail
// on the escape, as in make_cdf_table) with `table`, not counting escaped values' bypass bits.
// Equals the entropy of the normalised pmf plus the KL divergence the quantisation costs.
double cdf_table_cost_bits(const CdfTable& table, const std::vector<double>& pmf);

// What is wrong with a table ("" when it is valid, see CdfTable): e.g. "symbol 7 has frequency
// 0 (cdf[7] = cdf[8] = 1234)".
std::string cdf_table_problem(const CdfTable& table);

// Throws Error(kCorrupt, path, "CDF table: " + problem) for an invalid table, for tables that
// come from outside (a model file); path names that file.
void validate_cdf_table(const CdfTable& table, const std::string& path);

// Tables as bytes, little-endian (docs/formats.md, "CDF tables"): uint32 precision,
// uint32 count, then per table int32 offset, uint32 symbols n, n x uint16 frequency.
// Throws Error(kInvalidData) for an invalid table or more than kMaxCdfTables.
std::vector<uint8_t> serialize_cdf_tables(const std::vector<CdfTable>& tables);

// The inverse; every length is checked against the bytes left before it is used, every table
// validated, and the data must end with the last table. Throws Error(kCorrupt, path, ...) for
// damaged data and Error(kUnsupported, path, ...) for another precision.
std::vector<CdfTable> parse_cdf_tables(const uint8_t* data, size_t size, const std::string& path);

}  // namespace bottleneck

#include "codec/cdf.h"

#include <algorithm>
#include <cmath>
#include <queue>
#include <utility>

#include "util/error.h"

namespace bottleneck {
namespace {

[[noreturn]] void invalid(const std::string& reason) { throw Error(ErrorKind::kInvalidData, "", reason); }

void put_le(uint64_t v, int bytes, std::vector<uint8_t>& out) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// Bounds-checked little-endian reads; every failure names what was being read.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const std::string& path) : data_(data), size_(size), path_(path) {}
  size_t left() const { return size_ - pos_; }
  [[noreturn]] void fail(const std::string& reason) const {
    throw Error(ErrorKind::kCorrupt, path_, "CDF tables: " + reason);
  }
  void need(size_t bytes, const std::string& what) const {
    if (left() < bytes)
      fail("truncated: " + what + " needs " + std::to_string(bytes) + " bytes, " + std::to_string(left()) + " remain");
  }
  uint64_t get(int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | data_[pos_ + i];
    pos_ += bytes;
    return v;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

// The masses the table is built for: pmf then the escape's tail.
std::vector<double> with_tail(const std::vector<double>& pmf) {
  std::vector<double> masses(pmf);
  double sum = 0;
  for (double p : pmf) sum += p;
  masses.push_back(std::max(0.0, 1.0 - sum));
  return masses;
}

}  // namespace

CdfTable make_cdf_table(const std::vector<double>& pmf, int32_t offset) {
  if (pmf.empty()) invalid("pmf is empty");
  if (pmf.size() + 1 > kMaxCdfSymbols)
    invalid("pmf has " + std::to_string(pmf.size()) + " masses, at most " + std::to_string(kMaxCdfSymbols - 1) +
            " fit 16-bit frequencies with the escape");
  if (int64_t{offset} + static_cast<int64_t>(pmf.size()) - 1 > INT32_MAX)
    invalid("values " + std::to_string(offset) + ".." + std::to_string(int64_t{offset} + static_cast<int64_t>(pmf.size()) - 1) +
            " overflow int32");
  for (size_t i = 0; i < pmf.size(); ++i)
    if (!std::isfinite(pmf[i]) || pmf[i] < 0) invalid("pmf[" + std::to_string(i) + "] = " + std::to_string(pmf[i]));

  const std::vector<double> masses = with_tail(pmf);
  const uint32_t n = static_cast<uint32_t>(masses.size());
  double total = 0;
  for (double p : masses) total += p;
  if (!std::isfinite(total)) invalid("pmf sums to infinity");

  // The greedy hands out counts in order of gain, so its result is the kCdfTotal - n largest
  // gains. It need not start from 1: where the last count went at gain t, every symbol ends with
  // p_i / t - 1 < f_i (its next gain p_i ln(1 + 1/f_i) > p_i / (f_i + 1) was at most t), and
  // t < total / (kCdfTotal - n) (else the counts would not add up), so
  // f_i >= floor(p_i / total * (kCdfTotal - n)). Starting one below that, to be safe from
  // rounding, takes the same counts in O(n log n) instead of O(kCdfTotal log n).
  std::vector<uint32_t> freq(n);
  uint32_t left = kCdfTotal;
  for (uint32_t i = 0; i < n; ++i) {
    const double bound = std::floor(masses[i] / total * (kCdfTotal - n));
    freq[i] = bound >= 2 ? static_cast<uint32_t>(bound) - 1 : 1;
    left -= freq[i];
  }
  // Max-heap on (gain of one more count, lower index first).
  using Entry = std::pair<double, uint32_t>;
  auto less = [](const Entry& a, const Entry& b) { return a.first < b.first || (a.first == b.first && a.second > b.second); };
  std::priority_queue<Entry, std::vector<Entry>, decltype(less)> heap(less);
  for (uint32_t i = 0; i < n; ++i) heap.push({masses[i] * std::log1p(1.0 / freq[i]), i});
  for (; left > 0; --left) {
    const uint32_t i = heap.top().second;
    heap.pop();
    ++freq[i];
    heap.push({masses[i] * std::log1p(1.0 / freq[i]), i});
  }

  CdfTable table;
  table.offset = offset;
  table.cdf.resize(n + 1);
  table.cdf[0] = 0;
  for (uint32_t i = 0; i < n; ++i) table.cdf[i + 1] = table.cdf[i] + freq[i];
  return table;
}

double cdf_table_cost_bits(const CdfTable& table, const std::vector<double>& pmf) {
  const std::vector<double> masses = with_tail(pmf);
  if (masses.size() != table.num_symbols()) invalid("pmf and table sizes differ");
  double total = 0, bits = 0;
  for (double p : masses) total += p;
  for (size_t i = 0; i < masses.size(); ++i)
    if (masses[i] > 0)
      bits -= masses[i] / total * std::log2(double(table.cdf[i + 1] - table.cdf[i]) / kCdfTotal);
  return bits;
}

std::string cdf_table_problem(const CdfTable& table) {
  const std::vector<uint32_t>& cdf = table.cdf;
  if (cdf.size() < 3)
    return "has " + std::to_string(cdf.size()) + " cdf entries, needs at least 3 (a value and the escape)";
  const size_t n = cdf.size() - 1;
  if (n > kMaxCdfSymbols) return "has " + std::to_string(n) + " symbols, at most " + std::to_string(kMaxCdfSymbols);
  if (cdf[0] != 0) return "cdf[0] is " + std::to_string(cdf[0]) + ", not 0";
  if (cdf[n] != kCdfTotal)
    return "cdf[" + std::to_string(n) + "] is " + std::to_string(cdf[n]) + ", not " + std::to_string(kCdfTotal);
  for (size_t i = 0; i < n; ++i)
    if (cdf[i + 1] <= cdf[i])
      return "symbol " + std::to_string(i) + " has frequency 0 or less (cdf[" + std::to_string(i) + "] = " +
             std::to_string(cdf[i]) + ", cdf[" + std::to_string(i + 1) + "] = " + std::to_string(cdf[i + 1]) + ")";
  if (int64_t{table.offset} + static_cast<int64_t>(n) - 2 > INT32_MAX)
    return "values " + std::to_string(table.offset) + ".." + std::to_string(int64_t{table.offset} + static_cast<int64_t>(n) - 2) +
           " overflow int32";
  return "";
}

void validate_cdf_table(const CdfTable& table, const std::string& path) {
  const std::string problem = cdf_table_problem(table);
  if (!problem.empty()) throw Error(ErrorKind::kCorrupt, path, "CDF table: " + problem);
}

std::vector<uint8_t> serialize_cdf_tables(const std::vector<CdfTable>& tables) {
  if (tables.size() > kMaxCdfTables)
    invalid(std::to_string(tables.size()) + " CDF tables, at most " + std::to_string(kMaxCdfTables));
  std::vector<uint8_t> out;
  put_le(kCdfPrecision, 4, out);
  put_le(tables.size(), 4, out);
  for (size_t t = 0; t < tables.size(); ++t) {
    const std::string problem = cdf_table_problem(tables[t]);
    if (!problem.empty()) invalid("CDF table " + std::to_string(t) + ": " + problem);
    const std::vector<uint32_t>& cdf = tables[t].cdf;
    put_le(static_cast<uint32_t>(tables[t].offset), 4, out);
    put_le(cdf.size() - 1, 4, out);
    for (size_t i = 0; i + 1 < cdf.size(); ++i) put_le(cdf[i + 1] - cdf[i], 2, out);
  }
  return out;
}

std::vector<CdfTable> parse_cdf_tables(const uint8_t* data, size_t size, const std::string& path) {
  Reader in(data, size, path);
  in.need(8, "the header");
  const uint64_t precision = in.get(4);
  if (precision != kCdfPrecision)
    throw Error(ErrorKind::kUnsupported, path,
                "CDF tables have " + std::to_string(precision) + "-bit precision; this build codes with " +
                    std::to_string(kCdfPrecision));
  const uint64_t count = in.get(4);
  if (count > kMaxCdfTables) in.fail("count " + std::to_string(count) + " exceeds " + std::to_string(kMaxCdfTables));

  std::vector<CdfTable> tables;
  for (uint64_t t = 0; t < count; ++t) {
    const std::string name = "table " + std::to_string(t);
    in.need(8, name);
    CdfTable table;
    table.offset = static_cast<int32_t>(static_cast<uint32_t>(in.get(4)));
    const uint64_t n = in.get(4);
    if (n < 2 || n > kMaxCdfSymbols)
      in.fail(name + " has " + std::to_string(n) + " symbols, not 2.." + std::to_string(kMaxCdfSymbols));
    in.need(2 * n, name + "'s " + std::to_string(n) + " frequencies");
    table.cdf.resize(n + 1);
    table.cdf[0] = 0;
    for (uint64_t i = 0; i < n; ++i) {
      const uint32_t f = static_cast<uint32_t>(in.get(2));
      if (f == 0) in.fail(name + ": symbol " + std::to_string(i) + " has frequency 0");
      table.cdf[i + 1] = table.cdf[i] + f;  // <= 65536 * 65535, no overflow
    }
    if (table.cdf[n] != kCdfTotal)
      in.fail(name + ": frequencies sum to " + std::to_string(table.cdf[n]) + ", not " + std::to_string(kCdfTotal));
    const std::string problem = cdf_table_problem(table);
    if (!problem.empty()) in.fail(name + ": " + problem);
    tables.push_back(std::move(table));
  }
  if (in.left() != 0) in.fail(std::to_string(in.left()) + " bytes after the last table");
  return tables;
}

}  // namespace bottleneck

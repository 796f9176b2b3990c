#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace bottleneck {

// `v` with exactly `digits` decimals ("28.41"), for logs, tables and captions.
inline std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// A tensor's shape for messages: "[1, 3, 64, 64]" (pass tensor.sizes().vec()).
inline std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A measurement in a markdown table: `digits` decimals, "-" where there is none (NaN, inf).
// `digits` significant digits, the shortest form (0.0012346, 2.4257): a figure whose scale
// varies by task, such as a loss.
inline std::string significant(double v, int digits) {
  std::ostringstream s;
  s.precision(digits);
  s << v;
  return s.str();
}

inline std::string table_cell(double v, int digits) { return std::isfinite(v) ? fixed(v, digits) : "-"; }

// A measurement in a CSV file: 8 significant digits, empty where there is none.
inline std::string csv_cell(double v) {
  if (!std::isfinite(v)) return "";
  std::ostringstream s;
  s.precision(8);
  s << v;
  return s.str();
}

// A measurement in JSON (nlohmann::json or ordered_json): the number, or null where there is
// none, since JSON has no NaN.
template <class Json>
Json json_number(double v) {
  return std::isfinite(v) ? Json(v) : Json(nullptr);
}

}  // namespace bottleneck

#pragma once

#include <cstdio>
#include <string>

namespace bottleneck {

// `v` with exactly `digits` decimals ("28.41"), for logs, tables and captions.
inline std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace bottleneck

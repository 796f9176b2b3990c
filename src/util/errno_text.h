#pragma once

#include <cctype>
#include <cstring>
#include <string>

namespace bottleneck {

// strerror's text in the lower case our messages use ("permission denied").
inline std::string errno_text(int err) {
  std::string text = std::strerror(err);
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

}  // namespace bottleneck

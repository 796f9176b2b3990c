#pragma once

#include <algorithm>
#include <stdexcept>
#include <string>

namespace bottleneck {

// Every failure the library reports is an Error: the file it concerns (may be empty) and the
// reason. what() joins them as "FILE: REASON" so the CLI can print one line.
class Error : public std::runtime_error {
 public:
  Error(std::string path, std::string reason)
      : std::runtime_error(path.empty() ? reason : path + ": " + reason),
        path_(std::move(path)),
        reason_(std::move(reason)) {}
  explicit Error(std::string reason) : Error(std::string(), std::move(reason)) {}

  const std::string& path() const { return path_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string path_;
  std::string reason_;
};

// A bad option value or combination: the CLI maps it to exit code 2 like a parse error.
class UsageError : public Error {
 public:
  using Error::Error;
};

// The first non-empty line of a library message such as a c10::Error (the rest is a C++ stack
// trace users should not see; TorchScript compile errors start with a newline). Control and
// non-ASCII bytes, which messages may quote from a damaged file, become '?'.
inline std::string first_line(const std::string& s) {
  const size_t start = std::min(s.find_first_not_of("\n \t"), s.size());
  std::string line = s.substr(start, s.find('\n', start) - start);
  for (char& c : line)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return line;
}

}  // namespace bottleneck

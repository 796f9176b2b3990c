#pragma once

#include <algorithm>
#include <stdexcept>
#include <string>

namespace bottleneck {

// What went wrong, so that callers (and the CLI's exit code) can tell a typo from a damaged file
// without parsing messages (the distinctions of leveldb's Status).
enum class ErrorKind {
  kFailed,       // anything else: a failed computation, a non-finite loss, an internal limit
  kUsage,        // what the user typed: a bad option value or combination (CLI exit code 2)
  kInvalidData,  // input data that cannot be used as asked: wrong size, channels, empty folder
  kCorrupt,      // a file that is damaged: bad magic, checksum mismatch, truncated, garbled
  kUnsupported,  // a well-formed file this build cannot read: a future format version, a codec
  kIo,           // the operating system refused: open, read, write, rename, disk full
};

// Every failure the library reports is an Error: its kind, the file it concerns (may be empty)
// and the reason. what() joins them as "FILE: REASON" so the CLI can print one line.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string path, std::string reason)
      : std::runtime_error(path.empty() ? reason : path + ": " + reason),
        kind_(kind),
        path_(std::move(path)),
        reason_(std::move(reason)) {}
  Error(std::string path, std::string reason)
      : Error(ErrorKind::kFailed, std::move(path), std::move(reason)) {}
  explicit Error(std::string reason) : Error(std::string(), std::move(reason)) {}

  ErrorKind kind() const { return kind_; }
  const std::string& path() const { return path_; }
  const std::string& reason() const { return reason_; }

 private:
  ErrorKind kind_;
  std::string path_;
  std::string reason_;
};

// A bad option value or combination: the CLI maps it to exit code 2 like a parse error.
class UsageError : public Error {
 public:
  UsageError(std::string path, std::string reason)
      : Error(ErrorKind::kUsage, std::move(path), std::move(reason)) {}
  explicit UsageError(std::string reason) : UsageError(std::string(), std::move(reason)) {}
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

#pragma once

#include <iostream>
#include <sstream>
#include <string>

namespace bottleneck {

enum class LogLevel { kQuiet = 0, kInfo = 1, kDebug = 2 };

// A logger is passed to the components that talk to the user; there is no global one.
// Messages go to stderr so that stdout stays free for tables and machine-readable output.
class Logger {
 public:
  explicit Logger(LogLevel level = LogLevel::kInfo, std::ostream* out = &std::cerr)
      : level_(level), out_(out) {}

  LogLevel level() const { return level_; }
  bool enabled(LogLevel l) const { return static_cast<int>(l) <= static_cast<int>(level_); }

  template <typename... Args>
  void info(const Args&... args) const { write(LogLevel::kInfo, args...); }
  template <typename... Args>
  void debug(const Args&... args) const { write(LogLevel::kDebug, args...); }
  // Warnings are shown even with --quiet: they mean something was skipped or degraded.
  template <typename... Args>
  void warn(const Args&... args) const { emit("warning: ", args...); }

 private:
  template <typename... Args>
  void write(LogLevel l, const Args&... args) const {
    if (enabled(l)) emit("", args...);
  }
  template <typename... Args>
  void emit(const char* prefix, const Args&... args) const {
    std::ostringstream s;
    s << prefix;
    (s << ... << args);
    s << '\n';
    *out_ << s.str() << std::flush;
  }

  LogLevel level_;
  std::ostream* out_;
};

}  // namespace bottleneck

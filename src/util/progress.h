#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace bottleneck {

// A progress display for long jobs. On a terminal it redraws one line in place
// ("[=====>    ] 1200/5000 24% | 3.1 it/s | ETA 20m31s | loss 0.0012"); elsewhere (logs, CI) it
// prints a plain line at most every `plain_interval_s` seconds and at the end, so logs stay
// readable. Rates are averaged over the recent past, not since the start, so ETA follows
// changes in speed.
class ProgressBar {
 public:
  struct Options {
    std::string label;              // e.g. "train"
    std::string unit = "it";        // what `current` counts, for the rate: "it", "files"
    bool tty = false;               // redraw in place; use is_terminal(stderr) to decide
    double plain_interval_s = 10;   // minimum seconds between plain lines
    bool enabled = true;            // false: print nothing (--quiet)
  };

  ProgressBar(int64_t total, int64_t start, Options options, std::ostream& out);

  // current: units done so far (absolute, >= start); extra: free text appended to the line,
  // e.g. "loss 0.0021 | 512 img/s".
  void update(int64_t current, const std::string& extra = "");
  // Final line (ends the in-place line on a terminal).
  void finish(const std::string& extra = "");

  // Units per second over the recent past; 0 until two updates.
  double rate() const { return rate_; }

  // Formats seconds as "45s", "3m07s", "2h05m".
  static std::string format_duration(double seconds);

 private:
  std::string render(int64_t current, const std::string& extra) const;

  int64_t total_;
  Options options_;
  std::ostream& out_;
  using Clock = std::chrono::steady_clock;
  Clock::time_point last_sample_time_;
  int64_t last_sample_units_;
  Clock::time_point last_print_;
  double rate_ = 0;
  bool printed_any_ = false;
  int64_t current_ = 0;
};

// True when the file descriptor is a terminal (isatty).
bool is_terminal(int fd);

}  // namespace bottleneck

#include "util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>

namespace bottleneck {
namespace {

// The rate is an exponential moving average in time: a sample taken dt seconds after the
// previous one gets weight 1 - exp(-dt / kRateTimeConstantS), so the estimate forgets speeds
// older than about this many seconds however often update() is called.
constexpr double kRateTimeConstantS = 5.0;
// Samples closer together than this are merged into the next one: dividing a handful of units
// by a few microseconds gives rates that are mostly timer noise.
constexpr double kMinSampleS = 0.05;
// A terminal line is redrawn at most this often; drawing is slower than a fast training step.
constexpr double kTtyRedrawS = 0.1;
// Terminal lines are cut to this many columns so they never wrap (a wrapped line cannot be
// redrawn in place with '\r').
constexpr size_t kTtyWidth = 100;
constexpr int kBarWidth = 20;

double seconds_between(std::chrono::steady_clock::time_point a,
                       std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string format_rate(double rate, const std::string& unit) {
  char buf[64];
  if (rate >= 100)
    std::snprintf(buf, sizeof buf, "%.0f %s/s", rate, unit.c_str());
  else if (rate >= 1)
    std::snprintf(buf, sizeof buf, "%.1f %s/s", rate, unit.c_str());
  else
    std::snprintf(buf, sizeof buf, "%.2f %s/s", rate, unit.c_str());
  return buf;
}

// Whole percent, floored so that 100% means done rather than "99.5% rounded up".
int percent(int64_t current, int64_t total) {
  const double p = 100.0 * static_cast<double>(current) / static_cast<double>(total);
  return static_cast<int>(std::clamp(std::floor(p), 0.0, 100.0));
}

}  // namespace

ProgressBar::ProgressBar(int64_t total, int64_t start, Options options, std::ostream& out)
    : total_(total),
      options_(std::move(options)),
      out_(out),
      // A default (epoch) sample time means "no reference point yet": the first update() sets
      // it, so the time spent before the first unit (start-up, warm-up) never enters the rate.
      last_sample_time_(),
      last_sample_units_(start),
      last_print_(Clock::now()),
      current_(start) {}

void ProgressBar::update(int64_t current, const std::string& extra) {
  const Clock::time_point now = Clock::now();
  current_ = current;
  if (last_sample_time_ == Clock::time_point()) {
    last_sample_time_ = now;
    last_sample_units_ = current;
  } else {
    const double dt = seconds_between(last_sample_time_, now);
    if (dt >= kMinSampleS) {
      const double instant = static_cast<double>(current - last_sample_units_) / dt;
      if (rate_ == 0) {
        rate_ = std::max(0.0, instant);
      } else {
        const double w = 1 - std::exp(-dt / kRateTimeConstantS);
        rate_ = std::max(0.0, rate_ + w * (instant - rate_));
      }
      last_sample_time_ = now;
      last_sample_units_ = current;
    }
  }

  if (!options_.enabled) return;
  const double since_print = seconds_between(last_print_, now);
  if (options_.tty) {
    if (printed_any_ && since_print < kTtyRedrawS) return;
    out_ << '\r' << render(current, extra) << "\x1b[K" << std::flush;
  } else {
    // The last unit's line is finish()'s to print, so a log does not end with the same step twice.
    if (printed_any_ && (since_print < options_.plain_interval_s || (total_ > 0 && current >= total_))) return;
    out_ << render(current, extra) << '\n' << std::flush;
  }
  printed_any_ = true;
  last_print_ = now;
}

void ProgressBar::finish(const std::string& extra) {
  if (!options_.enabled) return;
  if (options_.tty)
    out_ << '\r' << render(current_, extra) << "\x1b[K\n" << std::flush;
  else
    out_ << render(current_, extra) << '\n' << std::flush;
  printed_any_ = true;
  last_print_ = Clock::now();
}

std::string ProgressBar::render(int64_t current, const std::string& extra) const {
  const bool known_total = total_ > 0;
  const bool show_eta = known_total && rate_ > 0 && current < total_;
  std::string eta;
  if (show_eta) eta = format_duration(static_cast<double>(total_ - current) / rate_);
  const std::string count =
      known_total ? std::to_string(current) + "/" + std::to_string(total_)
                  : std::to_string(current) + " " + options_.unit;

  std::string line = options_.label;
  if (options_.tty) {
    if (known_total) {
      const int p = percent(current, total_);
      const int filled = p * kBarWidth / 100;
      std::string bar(static_cast<size_t>(kBarWidth), ' ');
      std::fill(bar.begin(), bar.begin() + filled, '=');
      if (filled < kBarWidth) bar[static_cast<size_t>(filled)] = '>';
      if (!line.empty()) line += ' ';
      line += "[" + bar + "] " + count + " " + std::to_string(p) + "%";
    } else {
      if (!line.empty()) line += ' ';
      line += count;
    }
    if (rate_ > 0) line += " | " + format_rate(rate_, options_.unit);
    if (show_eta) line += " | ETA " + eta;
    if (!extra.empty()) line += " | " + extra;
    if (line.size() > kTtyWidth) line.resize(kTtyWidth);
    return line;
  }

  if (!line.empty()) line += ' ';
  line += count;
  if (known_total) line += " (" + std::to_string(percent(current, total_)) + "%)";
  if (rate_ > 0) line += " " + format_rate(rate_, options_.unit);
  if (show_eta) line += " ETA " + eta;
  if (!extra.empty()) line += " | " + extra;
  return line;
}

std::string ProgressBar::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds > 1e15) return "?";  // llround would overflow; no job runs 30 million years
  const long long s = std::llround(seconds);
  char buf[48];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%llds", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
  return buf;
}

bool is_terminal(int fd) { return ::isatty(fd) == 1; }

}  // namespace bottleneck

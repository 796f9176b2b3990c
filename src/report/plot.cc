#include "report/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "util/error.h"
#include "image/image_io.h"

namespace bottleneck {
namespace {

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
// Smallest chart that still has room for tick labels and a plot area.
constexpr int kMinWidth = 160;
constexpr int kMinHeight = 120;
// Fraction of the data range left empty on each side so lines do not run along the frame.
constexpr double kMarginX = 0.02;
constexpr double kMarginY = 0.06;
// Series with at most this many points also get a dot per point: sparse curves (a few
// validation runs) are easier to read, and a single point is visible at all.
constexpr size_t kMaxMarkedPoints = 40;
// Sub-pixel precision of the anti-aliased lines (coordinates are multiplied by 2^kShift).
constexpr int kShift = 4;

const cv::Scalar kWhite(255, 255, 255);
const cv::Scalar kText(30, 30, 30);
const cv::Scalar kFrame(90, 90, 90);
const cv::Scalar kGrid(228, 228, 228);
const cv::Scalar kNote(150, 150, 150);
const cv::Scalar kLegendBorder(180, 180, 180);

struct Range {
  double lo = 0;
  double hi = 1;
};

struct Axis {
  Range range;                      // shown range; log10 of the value on a log axis
  std::vector<double> ticks;        // in the same units as range
  std::vector<std::string> labels;  // one per tick
};

// Finite points per series (y as log10 on a log axis) and the two axes.
struct Chart {
  std::vector<std::vector<cv::Point2d>> points;
  Axis x;
  Axis y;
  bool has_data = false;
};

// Sizes that follow the chart size, so a 1920-pixel chart is not drawn with 640-pixel text.
struct Style {
  double scale;       // 1 at the default 640 x 360
  double tick_font;   // font scale of tick labels and legend
  double title_font;  // font scale of the title
  double label_font;  // font scale of axis labels
  int text_thick;     // stroke of small text
  int title_thick;    // stroke of the title, drawn twice a pixel apart when 1 (semi-bold)
  int line_thick;     // stroke of the series
  int pad;            // general spacing in pixels
};

Style style_for(const PlotOptions& o) {
  Style s;
  s.scale = std::clamp(std::min(o.width / 640.0, o.height / 360.0), 0.7, 4.0);
  s.tick_font = 0.42 * s.scale;
  s.title_font = 0.6 * s.scale;
  s.label_font = 0.48 * s.scale;
  s.text_thick = std::max(1, static_cast<int>(std::lround(s.scale * 0.75)));
  s.title_thick = s.text_thick + (s.scale >= 1.5 ? 1 : 0);
  s.line_thick = std::max(2, static_cast<int>(std::lround(2 * s.scale)));
  s.pad = std::max(4, static_cast<int>(std::lround(8 * s.scale)));
  return s;
}

cv::Size text_size(const std::string& text, double font, int thick, int* baseline = nullptr) {
  int b = 0;
  cv::Size size = cv::getTextSize(text, kFont, font, thick, &b);
  if (baseline) *baseline = b;
  return size;
}

// Drops a trailing ".0...", a '+' and leading zeros of a printf exponent: "2e-05" -> "2e-5".
std::string tidy_exponent(std::string s) {
  const size_t e = s.find('e');
  if (e == std::string::npos) return s;
  std::string mantissa = s.substr(0, e);
  std::string exponent = s.substr(e + 1);
  bool negative = false;
  if (!exponent.empty() && (exponent[0] == '+' || exponent[0] == '-')) {
    negative = exponent[0] == '-';
    exponent.erase(0, 1);
  }
  exponent.erase(0, std::min(exponent.find_first_not_of('0'), exponent.size() - 1));
  return mantissa + "e" + (negative ? "-" : "") + exponent;
}

std::string format_fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  std::string s = buf;
  if (s.find_first_not_of("-0.") == std::string::npos) s = "0";  // no "-0" or "0.00"
  return s;
}

int decimals_for(double step) {
  return std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
}

// Labels for ticks `step` apart: as many decimals as the step needs, thousands as "k" and
// millions as "M" so iteration counts stay short ("250k" rather than "250000").
std::vector<std::string> linear_labels(const std::vector<double>& ticks, double step) {
  double largest = 0;
  for (double t : ticks) largest = std::max(largest, std::abs(t));
  double divisor = 1;
  const char* suffix = "";
  if (largest >= 1e7 && step >= 1e5) {
    divisor = 1e6;
    suffix = "M";
  } else if (largest >= 1e4 && step >= 100) {
    divisor = 1e3;
    suffix = "k";
  }
  std::vector<std::string> labels;
  for (double t : ticks) {
    std::string s = format_fixed(t / divisor, decimals_for(step / divisor));
    labels.push_back(s == "0" ? s : s + suffix);
  }
  return labels;
}

// Ticks at multiples of a 1-2-5 step inside the range, the step chosen to give closest to five.
std::vector<double> nice_ticks(Range r, double* step_out) {
  const double span = r.hi - r.lo;
  double best_step = span;
  int best_score = std::numeric_limits<int>::max();
  const int top = static_cast<int>(std::ceil(std::log10(span))) + 1;
  for (int k = top - 4; k <= top; ++k) {
    for (double m : {1.0, 2.0, 5.0}) {
      const double step = m * std::pow(10.0, k);
      const double count = std::floor(r.hi / step + 1e-9) - std::ceil(r.lo / step - 1e-9) + 1;
      // Ties go to the larger step (fewer, shorter labels).
      const int score = static_cast<int>(std::abs(count - 5) * 2) + (count > 5 ? 1 : 0);
      if (score < best_score || (score == best_score && step > best_step)) {
        best_score = score;
        best_step = step;
      }
    }
  }
  std::vector<double> ticks;
  const double first = std::ceil(r.lo / best_step - 1e-9);
  const double last = std::floor(r.hi / best_step + 1e-9);
  for (double i = first; i <= last; ++i) ticks.push_back(i * best_step);
  *step_out = best_step;
  return ticks;
}

// "0.002", "50", "1e-5", "2e6": plain decimals near 1, exponents beyond four digits.
std::string format_power_of_ten_multiple(double value) {
  char buf[64];
  const double magnitude = std::floor(std::log10(value) + 1e-9);
  std::snprintf(buf, sizeof buf, std::abs(magnitude) >= 4 ? "%.0e" : "%g", value);
  return tidy_exponent(buf);
}

// Log axis (range in log10 units): ticks at powers of ten; when the range holds fewer than
// three, also at 2 and 5 times them; when that is still too few (less than a factor of ~4),
// ordinary 1-2-5 ticks of the values themselves.
void log_ticks(Axis& axis) {
  const Range r = axis.range;
  auto collect = [&](std::initializer_list<double> mantissas) {
    std::vector<double> values;
    for (int k = static_cast<int>(std::floor(r.lo)) - 1; k <= static_cast<int>(std::ceil(r.hi));
         ++k) {
      for (double m : mantissas) {
        const double t = std::log10(m) + k;
        if (t >= r.lo - 1e-9 && t <= r.hi + 1e-9) values.push_back(t);
      }
    }
    return values;
  };
  std::vector<double> ticks = collect({1.0});
  if (ticks.size() > 7) {
    // Many decades: every n-th power so that at most ~6 labels remain.
    const size_t every = (ticks.size() + 5) / 6;
    std::vector<double> thinned;
    for (double t : ticks)
      if (static_cast<long long>(std::llround(t)) % static_cast<long long>(every) == 0)
        thinned.push_back(t);
    ticks = thinned;
  }
  if (ticks.size() < 3) ticks = collect({1.0, 2.0, 5.0});
  if (ticks.size() >= 3) {
    axis.ticks = ticks;
    for (double t : ticks) axis.labels.push_back(format_power_of_ten_multiple(std::pow(10.0, t)));
    return;
  }
  double step = 1;
  const std::vector<double> values =
      nice_ticks({std::pow(10.0, r.lo), std::pow(10.0, r.hi)}, &step);
  const std::vector<std::string> labels = linear_labels(values, step);
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] <= 0) continue;
    axis.ticks.push_back(std::log10(values[i]));
    axis.labels.push_back(labels[i]);
  }
}

// Widens a degenerate range (one point, constant values) and adds the margins.
Range padded(double lo, double hi, double margin, bool log) {
  if (!(hi > lo)) {
    const double pad = log ? 0.5 : (lo == 0 ? 1.0 : 0.05 * std::abs(lo));
    return {lo - pad, hi + pad};
  }
  const double m = (hi - lo) * margin;
  return {lo - m, hi + m};
}

Chart prepare(const std::vector<Series>& series, const PlotOptions& options,
              const Range* x_data_range) {
  if (options.width < kMinWidth || options.height < kMinHeight)
    throw UsageError("plot: chart size " + std::to_string(options.width) + "x" +
                     std::to_string(options.height) + " is too small (at least " +
                     std::to_string(kMinWidth) + "x" + std::to_string(kMinHeight) + ")");
  Chart chart;
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo;
  double y_lo = x_lo, y_hi = -x_lo;
  for (const Series& s : series) {
    if (s.x.size() != s.y.size())
      throw UsageError("plot: series '" + s.name + "' has " + std::to_string(s.x.size()) +
                       " x values but " + std::to_string(s.y.size()) + " y values");
    std::vector<cv::Point2d> pts;
    for (size_t i = 0; i < s.x.size(); ++i) {
      double y = s.y[i];
      if (options.log_y) y = y > 0 ? std::log10(y) : std::numeric_limits<double>::quiet_NaN();
      if (!std::isfinite(s.x[i]) || !std::isfinite(y)) continue;
      pts.emplace_back(s.x[i], y);
      x_lo = std::min(x_lo, s.x[i]);
      x_hi = std::max(x_hi, s.x[i]);
      y_lo = std::min(y_lo, y);
      y_hi = std::max(y_hi, y);
    }
    chart.points.push_back(std::move(pts));
  }
  chart.has_data = x_lo <= x_hi;
  if (x_data_range) {
    x_lo = std::min(x_lo, x_data_range->lo);
    x_hi = std::max(x_hi, x_data_range->hi);
  }
  if (!(x_lo <= x_hi)) {
    x_lo = 0;
    x_hi = 1;
  }
  if (!chart.has_data) {
    y_lo = 0;
    y_hi = 1;
  }
  chart.x.range = padded(x_lo, x_hi, kMarginX, false);
  chart.y.range = padded(y_lo, y_hi, kMarginY, options.log_y);

  double step = 1;
  chart.x.ticks = nice_ticks(chart.x.range, &step);
  chart.x.labels = linear_labels(chart.x.ticks, step);
  if (options.log_y) {
    log_ticks(chart.y);
  } else {
    chart.y.ticks = nice_ticks(chart.y.range, &step);
    chart.y.labels = linear_labels(chart.y.ticks, step);
  }
  return chart;
}

// Pixels left of the plot area: the rotated y label, the widest tick label and the tick marks.
int left_margin(const Chart& chart, const PlotOptions& options, const Style& st) {
  int widest = 0;
  for (const std::string& l : chart.y.labels)
    widest = std::max(widest, text_size(l, st.tick_font, st.text_thick).width);
  int label = 0;
  if (!options.y_label.empty()) {
    int baseline = 0;
    label = text_size(options.y_label, st.label_font, st.text_thick, &baseline).height + baseline +
            st.pad;
  }
  return st.pad + label + widest + st.pad;
}

// Top-left corner for the legend box: whichever corner of the plot area covers the fewest
// points of the curves.
cv::Point legend_corner(const std::vector<std::vector<cv::Point>>& pixels, cv::Rect area,
                        cv::Size box, int inset) {
  const std::vector<cv::Point> candidates = {
      {area.x + area.width - box.width - inset, area.y + inset},
      {area.x + inset, area.y + inset},
      {area.x + area.width - box.width - inset, area.y + area.height - box.height - inset},
      {area.x + inset, area.y + area.height - box.height - inset},
  };
  cv::Point best = candidates[0];
  long best_hits = std::numeric_limits<long>::max();
  for (const cv::Point& c : candidates) {
    const cv::Rect r(c, box);
    long hits = 0;
    for (const auto& line : pixels) {
      for (size_t i = 0; i < line.size(); ++i) {
        // Sample along each segment so long segments crossing the box are counted too.
        const cv::Point a = line[i];
        const cv::Point b = i + 1 < line.size() ? line[i + 1] : line[i];
        const int steps = std::max(1, static_cast<int>(cv::norm(b - a) / 4));
        for (int k = 0; k <= steps; ++k) {
          const cv::Point p = a + (b - a) * (static_cast<double>(k) / steps);
          if (r.contains(p)) ++hits;
        }
      }
    }
    if (hits < best_hits) {
      best_hits = hits;
      best = c;
    }
  }
  return best;
}

cv::Mat render(const Chart& chart, const std::vector<Series>& series, const PlotOptions& options,
               const Style& st, int left) {
  cv::Mat img(options.height, options.width, CV_8UC3, kWhite);

  int tick_baseline = 0;
  const int tick_h = text_size("0", st.tick_font, st.text_thick, &tick_baseline).height;
  const int tick_len = std::max(3, st.pad / 2);
  int title_h = 0;
  int title_baseline = 0;
  if (!options.title.empty())
    title_h = text_size(options.title, st.title_font, st.title_thick, &title_baseline).height;
  int xlabel_h = 0;
  int xlabel_baseline = 0;
  if (!options.x_label.empty())
    xlabel_h = text_size(options.x_label, st.label_font, st.text_thick, &xlabel_baseline).height;

  const int top = st.pad + (title_h > 0 ? title_h + title_baseline + st.pad : st.pad);
  const int bottom = tick_len + st.pad / 2 + tick_h + tick_baseline +
                     (xlabel_h > 0 ? st.pad / 2 + xlabel_h + xlabel_baseline : 0) + st.pad;
  int right = 2 * st.pad;
  if (!chart.x.labels.empty())
    right = std::max(right, text_size(chart.x.labels.back(), st.tick_font, st.text_thick).width /
                                    2 + st.pad);
  const cv::Rect area(left, top, std::max(1, options.width - left - right),
                      std::max(1, options.height - top - bottom));

  auto px = [&](double x) {
    return area.x + (x - chart.x.range.lo) / (chart.x.range.hi - chart.x.range.lo) * area.width;
  };
  auto py = [&](double y) {
    return area.y + area.height -
           (y - chart.y.range.lo) / (chart.y.range.hi - chart.y.range.lo) * area.height;
  };

  // Grid, then the curves (clipped to the plot area by drawing into it), then the frame on top.
  for (double t : chart.x.ticks) {
    const int x = static_cast<int>(std::lround(px(t)));
    cv::line(img, {x, area.y}, {x, area.y + area.height}, kGrid, 1);
  }
  for (double t : chart.y.ticks) {
    const int y = static_cast<int>(std::lround(py(t)));
    cv::line(img, {area.x, y}, {area.x + area.width, y}, kGrid, 1);
  }

  cv::Mat plot_area = img(area);
  const double fixed = 1 << kShift;
  std::vector<std::vector<cv::Point>> pixels;  // whole-pixel positions, for the legend placement
  for (size_t s = 0; s < chart.points.size(); ++s) {
    const auto& pts = chart.points[s];
    std::vector<cv::Point> sub;  // fixed-point, relative to the plot area
    std::vector<cv::Point> whole;
    for (const cv::Point2d& p : pts) {
      const double x = px(p.x), y = py(p.y);
      sub.emplace_back(static_cast<int>(std::lround((x - area.x) * fixed)),
                       static_cast<int>(std::lround((y - area.y) * fixed)));
      whole.emplace_back(static_cast<int>(std::lround(x)), static_cast<int>(std::lround(y)));
    }
    pixels.push_back(whole);
    const cv::Scalar color = series[s].color;
    if (sub.size() >= 2)
      cv::polylines(plot_area, std::vector<std::vector<cv::Point>>{sub}, false, color,
                    st.line_thick, cv::LINE_AA, kShift);
    if (!sub.empty() && sub.size() <= kMaxMarkedPoints) {
      const int radius = static_cast<int>(std::lround((st.line_thick + 1.5) * fixed));
      for (const cv::Point& p : sub) cv::circle(plot_area, p, radius, color, cv::FILLED, cv::LINE_AA, kShift);
    }
  }

  cv::rectangle(img, area, kFrame, 1);
  for (size_t i = 0; i < chart.x.ticks.size(); ++i) {
    const int x = static_cast<int>(std::lround(px(chart.x.ticks[i])));
    const int y = area.y + area.height;
    cv::line(img, {x, y}, {x, y + tick_len}, kFrame, 1);
    const cv::Size sz = text_size(chart.x.labels[i], st.tick_font, st.text_thick);
    cv::putText(img, chart.x.labels[i], {x - sz.width / 2, y + tick_len + st.pad / 2 + sz.height},
                kFont, st.tick_font, kText, st.text_thick, cv::LINE_AA);
  }
  for (size_t i = 0; i < chart.y.ticks.size(); ++i) {
    const int y = static_cast<int>(std::lround(py(chart.y.ticks[i])));
    cv::line(img, {area.x - tick_len, y}, {area.x, y}, kFrame, 1);
    const cv::Size sz = text_size(chart.y.labels[i], st.tick_font, st.text_thick);
    cv::putText(img, chart.y.labels[i], {area.x - tick_len - st.pad / 2 - sz.width, y + sz.height / 2},
                kFont, st.tick_font, kText, st.text_thick, cv::LINE_AA);
  }

  if (!options.title.empty()) {
    const cv::Size sz = text_size(options.title, st.title_font, st.title_thick);
    const cv::Point at(area.x + (area.width - sz.width) / 2, st.pad + sz.height);
    cv::putText(img, options.title, at, kFont, st.title_font, kText, st.title_thick, cv::LINE_AA);
    if (st.title_thick == 1)
      cv::putText(img, options.title, at + cv::Point(1, 0), kFont, st.title_font, kText, 1,
                  cv::LINE_AA);
  }
  if (!options.x_label.empty()) {
    const cv::Size sz = text_size(options.x_label, st.label_font, st.text_thick);
    cv::putText(img, options.x_label,
                {area.x + (area.width - sz.width) / 2, options.height - st.pad - xlabel_baseline},
                kFont, st.label_font, kText, st.text_thick, cv::LINE_AA);
  }
  if (!options.y_label.empty()) {
    // putText only writes horizontally: draw on a strip and turn it a quarter counterclockwise.
    int baseline = 0;
    const cv::Size sz = text_size(options.y_label, st.label_font, st.text_thick, &baseline);
    cv::Mat strip(sz.height + baseline + 2, sz.width + 2, CV_8UC3, kWhite);
    cv::putText(strip, options.y_label, {1, sz.height + 1}, kFont, st.label_font, kText,
                st.text_thick, cv::LINE_AA);
    cv::Mat turned;
    cv::rotate(strip, turned, cv::ROTATE_90_COUNTERCLOCKWISE);
    const int x = st.pad;
    const int y = std::max(0, area.y + (area.height - turned.rows) / 2);
    const cv::Rect dst(x, y, std::min(turned.cols, options.width - x),
                       std::min(turned.rows, options.height - y));
    turned(cv::Rect(0, 0, dst.width, dst.height)).copyTo(img(dst));
  }

  if (!chart.has_data) {
    const std::string note = "no data yet";
    const cv::Size sz = text_size(note, st.label_font, st.text_thick);
    cv::putText(img, note,
                {area.x + (area.width - sz.width) / 2, area.y + (area.height + sz.height) / 2},
                kFont, st.label_font, kNote, st.text_thick, cv::LINE_AA);
    return img;
  }

  // Legend: one row per named series, a short line in its colour and the name.
  std::vector<size_t> named;
  for (size_t s = 0; s < series.size(); ++s)
    if (!series[s].name.empty()) named.push_back(s);
  if (named.empty()) return img;
  const int sample = 3 * st.pad;
  const int row_h = tick_h + tick_baseline + st.pad / 2;
  int text_w = 0;
  for (size_t s : named)
    text_w = std::max(text_w, text_size(series[s].name, st.tick_font, st.text_thick).width);
  const cv::Size box(st.pad + sample + st.pad / 2 + text_w + st.pad,
                     st.pad / 2 + row_h * static_cast<int>(named.size()) + st.pad / 2);
  const cv::Point corner = legend_corner(pixels, area, box, st.pad);
  cv::rectangle(img, cv::Rect(corner, box), kWhite, cv::FILLED);
  cv::rectangle(img, cv::Rect(corner, box), kLegendBorder, 1);
  for (size_t r = 0; r < named.size(); ++r) {
    const Series& s = series[named[r]];
    const int mid = corner.y + st.pad / 2 + row_h * static_cast<int>(r) + row_h / 2;
    cv::line(img, {corner.x + st.pad, mid}, {corner.x + st.pad + sample, mid}, s.color,
             st.line_thick, cv::LINE_AA);
    cv::putText(img, s.name, {corner.x + st.pad + sample + st.pad / 2, mid + tick_h / 2}, kFont,
                st.tick_font, kText, st.text_thick, cv::LINE_AA);
  }
  return img;
}

Range finite_range(const std::vector<double>& a, const std::vector<double>& b) {
  Range r{std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  for (const auto* v : {&a, &b})
    for (double x : *v)
      if (std::isfinite(x)) {
        r.lo = std::min(r.lo, x);
        r.hi = std::max(r.hi, x);
      }
  return r;
}

}  // namespace

cv::Mat plot_lines(const std::vector<Series>& series, const PlotOptions& options) {
  const Chart chart = prepare(series, options, nullptr);
  const Style st = style_for(options);
  return render(chart, series, options, st, left_margin(chart, options, st));
}

void write_training_curves(const std::string& path, const std::vector<double>& loss_iters,
                           const std::vector<double>& loss, const std::vector<double>& val_iters,
                           const std::vector<double>& val_psnr,
                           const std::vector<double>& val_psnr_noisy) {
  // Colours are BGR: matplotlib's tab:blue, tab:red and a mid gray.
  const std::vector<Series> loss_series = {
      {"training loss", loss_iters, loss, cv::Scalar(180, 119, 31)}};
  std::vector<Series> psnr_series = {{"model", val_iters, val_psnr, cv::Scalar(40, 39, 214)}};
  // An empty noisy series (not measured) is left out rather than given a legend entry.
  if (!val_psnr_noisy.empty())
    psnr_series.push_back({"noisy input", val_iters, val_psnr_noisy, cv::Scalar(140, 140, 140)});

  PlotOptions top;
  top.title = "training loss";
  top.x_label = "iteration";
  top.y_label = "loss";
  top.log_y = true;
  top.width = 800;
  top.height = 360;
  PlotOptions bottom = top;
  bottom.title = "validation PSNR";
  bottom.y_label = "PSNR (dB)";
  bottom.log_y = false;

  // Both charts share the x range and the left edge of the plot area, so the same iteration
  // sits at the same column in both.
  const Range xr = finite_range(loss_iters, val_iters);
  const Range* shared = xr.lo <= xr.hi ? &xr : nullptr;
  const Chart loss_chart = prepare(loss_series, top, shared);
  const Chart psnr_chart = prepare(psnr_series, bottom, shared);
  const Style st = style_for(top);
  const int left = std::max(left_margin(loss_chart, top, st), left_margin(psnr_chart, bottom, st));
  cv::Mat both;
  cv::vconcat(render(loss_chart, loss_series, top, st, left),
              render(psnr_chart, psnr_series, bottom, st, left), both);

  save_mat(path, both);
}

}  // namespace bottleneck

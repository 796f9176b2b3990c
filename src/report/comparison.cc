#include "report/comparison.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "util/error.h"

namespace bottleneck {
namespace {

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
// Font scale per pixel of panel width (a 500-pixel panel gets scale 1), with a floor so small
// images still get readable text, and the floor text is shrunk to when a word does not fit.
constexpr double kScalePerPixel = 1.0 / 500;
constexpr double kMinScale = 0.4;
constexpr double kSmallestScale = 0.3;
constexpr double kCaptionRatio = 0.85;  // caption font relative to the title font
// Narrower images are magnified by a whole factor (each pixel a k x k block) to at least this
// width: a 28-pixel panel cannot hold a legible title, and is too small to judge by eye anyway.
constexpr int kMinPanelWidth = 64;
const cv::Scalar kWhite(255, 255, 255);
const cv::Scalar kTitleColor(20, 20, 20);
const cv::Scalar kCaptionColor(70, 70, 70);

std::string size_text(const torch::Tensor& t) {
  std::string s;
  for (int64_t d : t.sizes()) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}

// C x H x W float in [0,1] (RGB order, or gray) -> 8-bit BGR, rounded like tensor_to_mat, each
// pixel repeated into a magnify x magnify block.
cv::Mat to_bgr8(const torch::Tensor& image, int magnify) {
  torch::Tensor t = image.detach().to(torch::kCPU, torch::kFloat);
  t = torch::nan_to_num(t, 0.0, 1.0, 0.0).clamp(0, 1).mul(255).round().to(torch::kUInt8);
  if (magnify > 1) t = t.repeat_interleave(magnify, 1).repeat_interleave(magnify, 2);
  if (t.size(0) == 1) t = t.expand({3, t.size(1), t.size(2)});
  t = t.flip({0}).permute({1, 2, 0}).contiguous();
  cv::Mat view(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_8UC3, t.data_ptr());
  return view.clone();
}

struct Font {
  double scale;
  int thick;
};

int text_width(const std::string& s, const Font& f) {
  int baseline = 0;
  return cv::getTextSize(s, kFont, f.scale, f.thick, &baseline).width;
}

std::vector<std::string> split(const std::string& text, const std::string& sep) {
  std::vector<std::string> parts;
  size_t begin = 0;
  while (true) {
    const size_t end = text.find(sep, begin);
    const std::string part = text.substr(begin, end == std::string::npos ? end : end - begin);
    if (!part.empty()) parts.push_back(part);
    if (end == std::string::npos) break;
    begin = end + sep.size();
  }
  return parts;
}

// Greedy wrapping of `pieces` joined by `sep` into lines no wider than max_width, filled from
// the end so that a value stays with its unit ("PSNR" / "20.17 dB", not "PSNR 20.17" / "dB").
std::vector<std::string> fill_lines(const std::vector<std::string>& pieces, const std::string& sep,
                                    const Font& f, int max_width) {
  std::vector<std::string> lines;
  for (auto p = pieces.rbegin(); p != pieces.rend(); ++p) {
    if (!lines.empty() && text_width(*p + sep + lines.front(), f) <= max_width)
      lines.front() = *p + sep + lines.front();
    else
      lines.insert(lines.begin(), *p);
  }
  return lines;
}

// Captions are groups of words separated by two spaces ("PSNR 28.41 dB  SSIM 0.812"): lines
// break between groups first, and inside a group only when the group alone is too wide.
std::vector<std::string> wrap(const std::string& text, const Font& f, int max_width) {
  std::vector<std::string> lines;
  for (const std::string& group : fill_lines(split(text, "  "), "  ", f, max_width)) {
    if (text_width(group, f) <= max_width) {
      lines.push_back(group);
    } else {
      for (const std::string& l : fill_lines(split(group, " "), " ", f, max_width))
        lines.push_back(l);
    }
  }
  return lines;
}

bool words_fit(const std::string& text, const Font& f, int max_width) {
  for (const std::string& w : split(text, " "))
    if (text_width(w, f) > max_width) return false;
  return true;
}

// Height above the baseline of capitals and digits, and the whole line with descenders.
int ascent(const Font& f) {
  int baseline = 0;
  return cv::getTextSize("H", kFont, f.scale, f.thick, &baseline).height;
}
int line_height(const Font& f) {
  int baseline = 0;
  const cv::Size s = cv::getTextSize("Hg", kFont, f.scale, f.thick, &baseline);
  return s.height + baseline;
}

void draw_centered(cv::Mat& img, const std::string& text, int center_x, int baseline_y,
                   const Font& f, const cv::Scalar& color, bool bold) {
  const int x = center_x - text_width(text, f) / 2;
  cv::putText(img, text, {x, baseline_y}, kFont, f.scale, color, f.thick, cv::LINE_AA);
  // A one-pixel stroke cannot be made thicker by one step without doubling it; drawing it
  // again a pixel to the right gives a "semi-bold" that stays legible at small sizes.
  if (bold) cv::putText(img, text, {x + 1, baseline_y}, kFont, f.scale, color, f.thick, cv::LINE_AA);
}

}  // namespace

cv::Mat make_comparison(const std::vector<Panel>& panels) {
  if (panels.empty()) throw UsageError("comparison: no panels");
  for (const Panel& p : panels) {
    if (!p.image.defined() || p.image.dim() != 3 || (p.image.size(0) != 1 && p.image.size(0) != 3) ||
        p.image.size(1) < 1 || p.image.size(2) < 1)
      throw UsageError("comparison: panel '" + p.title + "' must be a 1 or 3 x H x W image, got " +
                       (p.image.defined() ? size_text(p.image) : std::string("no image")));
  }
  const int64_t h = panels[0].image.size(1);
  const int64_t w = panels[0].image.size(2);
  for (const Panel& p : panels) {
    if (p.image.size(1) != h || p.image.size(2) != w) {
      std::string sizes;
      for (const Panel& q : panels)
        sizes += (sizes.empty() ? "" : ", ") + (q.title.empty() ? std::string("(untitled)") : q.title) +
                 " " + std::to_string(q.image.size(2)) + "x" + std::to_string(q.image.size(1));
      throw UsageError("comparison: panels must all have the same size (W x H): " + sizes);
    }
  }
  const int magnify = w < kMinPanelWidth ? static_cast<int>((kMinPanelWidth + w - 1) / w) : 1;
  const int width = static_cast<int>(w) * magnify;
  const int height = static_cast<int>(h) * magnify;
  const int gap = std::clamp(width / 100, 4, 8);
  const int pad = std::max(4, static_cast<int>(std::lround(width * 0.02)));
  const int text_width_max = std::max(1, width - 2 * pad);

  // One font for all panels, shrunk (down to a floor) until every word fits its panel.
  double scale = std::max(kMinScale, width * kScalePerPixel);
  auto title_font = [](double s) {
    return Font{s, std::max(1, static_cast<int>(std::lround(s * 2.2)))};
  };
  auto caption_font = [](double s) {
    const double c = std::max(kSmallestScale, s * kCaptionRatio);
    return Font{c, std::max(1, static_cast<int>(std::lround(c * 1.3)))};
  };
  while (scale > kSmallestScale) {
    bool fits = true;
    for (const Panel& p : panels)
      fits = fits && words_fit(p.title, title_font(scale), text_width_max) &&
             words_fit(p.caption, caption_font(scale), text_width_max);
    if (fits) break;
    scale = std::max(kSmallestScale, scale * 0.9);
  }
  const Font tf = title_font(scale);
  const Font cf = caption_font(scale);
  const bool bold = tf.thick == 1;

  std::vector<std::vector<std::string>> titles, captions;
  size_t title_rows = 0, caption_rows = 0;
  for (const Panel& p : panels) {
    titles.push_back(wrap(p.title, tf, text_width_max));
    captions.push_back(wrap(p.caption, cf, text_width_max));
    title_rows = std::max(title_rows, titles.back().size());
    caption_rows = std::max(caption_rows, captions.back().size());
  }
  const int title_h = line_height(tf);
  const int caption_h = line_height(cf);
  const int line_gap = std::max(2, pad / 2);
  int band = pad;
  if (title_rows > 0) band += static_cast<int>(title_rows) * (title_h + line_gap);
  if (caption_rows > 0) band += static_cast<int>(caption_rows) * (caption_h + line_gap);
  band += pad;

  const int n = static_cast<int>(panels.size());
  cv::Mat out(band + height, n * width + (n - 1) * gap, CV_8UC3, kWhite);
  for (int i = 0; i < n; ++i) {
    const int x0 = i * (width + gap);
    to_bgr8(panels[static_cast<size_t>(i)].image, magnify)
        .copyTo(out(cv::Rect(x0, band, width, height)));
    const int cx = x0 + width / 2;
    // Titles and captions start on the same rows in every panel, whatever their line counts.
    int top = pad;
    for (const std::string& line : titles[static_cast<size_t>(i)]) {
      draw_centered(out, line, cx, top + ascent(tf), tf, kTitleColor, bold);
      top += title_h + line_gap;
    }
    top = pad + static_cast<int>(title_rows) * (title_h + line_gap);
    for (const std::string& line : captions[static_cast<size_t>(i)]) {
      draw_centered(out, line, cx, top + ascent(cf), cf, kCaptionColor, false);
      top += caption_h + line_gap;
    }
  }
  return out;
}

std::string quality_caption(double psnr, double ssim) {
  std::string out;
  char buf[64];
  if (!std::isnan(psnr)) {
    std::snprintf(buf, sizeof buf, "PSNR %.2f dB", psnr);
    out = buf;
  }
  if (!std::isnan(ssim)) {
    std::snprintf(buf, sizeof buf, "SSIM %.3f", ssim);
    out += (out.empty() ? "" : "  ") + std::string(buf);
  }
  return out;
}

}  // namespace bottleneck

#include "anomaly/anomaly_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "util/error.h"

namespace bottleneck {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The fraction of `sorted` (ascending) strictly above t.
double fraction_above(const std::vector<float>& sorted, double t) {
  const auto it = std::upper_bound(sorted.begin(), sorted.end(), t);
  return static_cast<double>(sorted.end() - it) / static_cast<double>(sorted.size());
}

}  // namespace

double auroc(const std::vector<float>& positive, const std::vector<float>& negative) {
  if (positive.empty() || negative.empty()) return kNaN;
  // Rank-sum form: sort all scores once; a run of ties shares its mean rank.
  std::vector<std::pair<float, bool>> all;
  all.reserve(positive.size() + negative.size());
  for (float s : positive) all.emplace_back(s, true);
  for (float s : negative) all.emplace_back(s, false);
  for (const auto& [s, p] : all)
    if (std::isnan(s)) throw Error(ErrorKind::kInvalidData, "", "auroc: a score is NaN");
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  double positive_rank_sum = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    int64_t positives = 0;
    while (j < all.size() && all[j].first == all[i].first) positives += all[j++].second ? 1 : 0;
    const double mean_rank = 0.5 * static_cast<double>(i + 1 + j);  // ranks i+1 .. j
    positive_rank_sum += mean_rank * static_cast<double>(positives);
    i = j;
  }
  const double p = static_cast<double>(positive.size()), n = static_cast<double>(negative.size());
  return (positive_rank_sum - p * (p + 1) / 2) / (p * n);
}

double pixel_auroc(const PixelScores& pixels) {
  std::vector<float> positive;
  for (const auto& r : pixels.regions) positive.insert(positive.end(), r.begin(), r.end());
  return auroc(positive, pixels.normal);
}

double pro_score(const PixelScores& pixels, double max_fpr, int steps) {
  if (pixels.regions.empty() || pixels.normal.empty()) return kNaN;
  if (!(max_fpr > 0 && max_fpr <= 1) || steps < 1) throw Error("pro_score: max_fpr must be in (0, 1], steps >= 1");
  std::vector<float> normal = pixels.normal;
  std::sort(normal.begin(), normal.end());
  std::vector<std::vector<float>> regions;
  for (const auto& r : pixels.regions) {
    if (r.empty()) continue;
    regions.push_back(r);
    std::sort(regions.back().begin(), regions.back().end());
  }
  if (regions.empty()) return kNaN;
  const size_t n = normal.size();
  // At FPR f the threshold is the normal score with a fraction f above it; the achieved FPR is
  // measured (ties make it smaller), and the curve is integrated against the achieved values.
  double area = 0, previous_fpr = 0, previous_pro = 0;
  bool first = true;
  for (int k = 0; k <= steps; ++k) {
    const double target = max_fpr * k / steps;
    const size_t above = static_cast<size_t>(std::floor(target * static_cast<double>(n)));
    // The threshold leaving `above` normal pixels strictly over it; FPR 0 = the largest score.
    const double t = above >= n ? -std::numeric_limits<double>::infinity() : normal[n - 1 - above];
    const double fpr = std::min(fraction_above(normal, t), max_fpr);
    double overlap = 0;
    for (const auto& r : regions) overlap += fraction_above(r, t);
    const double pro = overlap / static_cast<double>(regions.size());
    if (!first) area += 0.5 * (pro + previous_pro) * (fpr - previous_fpr);
    first = false;
    previous_fpr = fpr;
    previous_pro = pro;
  }
  // Up to max_fpr exactly: the last threshold's PRO holds to the end of the range.
  area += previous_pro * (max_fpr - previous_fpr);
  return area / max_fpr;
}

double threshold_at_fpr(std::vector<float> normal, double fpr) {
  if (normal.empty()) throw Error(ErrorKind::kInvalidData, "", "no normal scores to set a threshold on");
  if (!(fpr >= 0 && fpr < 1)) throw UsageError("--fpr must be >= 0 and below 1");
  std::sort(normal.begin(), normal.end());
  const size_t n = normal.size();
  const size_t allowed = std::min(n - 1, static_cast<size_t>(std::floor(fpr * static_cast<double>(n) + 1e-9)));
  return normal[n - 1 - allowed];
}

ScoreStats score_stats(std::vector<float> scores) {
  ScoreStats s;
  if (scores.empty()) return s;
  std::sort(scores.begin(), scores.end());
  const size_t n = scores.size();
  s.count = static_cast<int64_t>(n);
  const double sum = std::accumulate(scores.begin(), scores.end(), 0.0);
  s.mean = sum / static_cast<double>(n);
  double sq = 0;
  for (float v : scores) sq += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(sq / static_cast<double>(n));
  s.min = scores.front();
  s.max = scores.back();
  auto rank = [&](double q) {
    const size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(n)));
    return static_cast<double>(scores[std::min(n - 1, i == 0 ? 0 : i - 1)]);
  };
  s.p50 = rank(0.50);
  s.p95 = rank(0.95);
  s.p99 = rank(0.99);
  return s;
}

}  // namespace bottleneck

#pragma once

// The numbers anomaly detection is judged by, on plain arrays (torch- and OpenCV-free): image
// AUROC, pixel AUROC and PRO (the per-region overlap of the MVTec AD benchmark, Bergmann et al.
// 2021), and the threshold that keeps a false-positive rate on normal scores.

#include <cstdint>
#include <vector>

namespace bottleneck {

// Area under the ROC curve of `positive` (anomalous) against `negative` (normal) scores: the
// probability that a random positive scores above a random negative, ties counting one half
// (the Mann-Whitney U statistic / (P x N)). NaN when either side is empty. O((P + N) log(P + N)).
double auroc(const std::vector<float>& positive, const std::vector<float>& negative);

// Pixels of a test set for the localisation figures: every pixel outside the masks (normal
// images' included) is a negative, every connected region of a mask is one list of positives.
struct PixelScores {
  std::vector<float> normal;                 // scores of pixels outside every mask
  std::vector<std::vector<float>> regions;   // per connected mask region, its pixels' scores
};

// Pixel AUROC: all region pixels against the normal ones.
double pixel_auroc(const PixelScores& pixels);

// PRO, normalised area under the per-region-overlap curve up to `max_fpr` (MVTec AD uses 0.3):
// for thresholds t whose pixel FPR (normal pixels above t) runs from 0 to max_fpr, the mean over
// regions of the fraction of each region's pixels above t, integrated over the FPR (trapezoids
// on `steps` equally spaced FPRs) and divided by max_fpr, so 1 is perfect and a random map
// scores about max_fpr / 2. NaN without regions or normal pixels.
double pro_score(const PixelScores& pixels, double max_fpr = 0.3, int steps = 300);

// The threshold whose false-positive rate on `normal` is at most `fpr` (0 <= fpr < 1): images
// scoring strictly above it are anomalies. It is the (floor(fpr x n) + 1)-th largest normal
// score, so with distinct scores exactly floor(fpr x n) of the n normal images are flagged.
double threshold_at_fpr(std::vector<float> normal, double fpr);

// Summary of the normal scores a threshold was set on (stored with it in the model file).
struct ScoreStats {
  int64_t count = 0;
  double mean = 0, std = 0, min = 0, max = 0;
  double p50 = 0, p95 = 0, p99 = 0;  // nearest-rank percentiles
};
ScoreStats score_stats(std::vector<float> scores);

}  // namespace bottleneck

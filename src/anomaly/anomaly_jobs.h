#pragma once

// The jobs behind `score`, `calibrate`, `eval --task anomaly`, `encode` and `decode`: files or
// folder trees of images in (searched recursively), one bad file reported as "FILE: reason"
// without stopping the job (the report counts it, so the exit code can say so), every output
// written atomically and never over an input.

#include <cstdint>
#include <string>
#include <vector>

#include "anomaly/anomaly_model.h"
#include "image/image_io.h"
#include "util/log.h"

namespace bottleneck {

struct ScoreOptions {
  std::vector<std::string> inputs;  // image files or folders (recursive); required
  std::string model;                // model file (checkpoint or export); required
  std::string output;               // "" = no pictures; else per image OUT/REL/NAME.heat.png (the map
                                    // in colour over the image) and NAME.map.png (the raw map,
                                    // 16-bit: value x 65535), the input trees mirrored
  std::string score;                // "" = the calibrated kind, else kDefaultScore; or a name
  int64_t max_pixels = kDefaultMaxPixels;
  bool progress_tty = false;
};

struct ScoredFile {
  std::string file;
  double score = 0;
  int is_anomaly = -1;  // 1 / 0 against the calibrated threshold, -1 without one
};

struct ScoreReport {
  std::vector<ScoredFile> rows;       // in input order, folders sorted
  std::vector<std::string> failures;  // "FILE: reason"
  ScoreKind kind = kDefaultScore;
  bool calibrated = false;            // the threshold applies (the model's calibration, same kind)
  double threshold = 0;
  int64_t anomalies = 0;
  double seconds = 0;
};

// Throws UsageError for bad options (an output folder inside an input folder, two inputs whose
// pictures would be one file), Error for an unreadable model or no images at all.
ScoreReport score_files(const ScoreOptions& options, const Logger& log);
// "file,score,is_anomaly" and one row per file (is_anomaly empty without a threshold).
std::string scores_csv(const ScoreReport& report);

struct CalibrateOptions {
  std::string model;     // model file; an export is updated in place unless `output` is given
  std::string normal;    // folder (or file) of normal images; required
  double fpr = 0.01;     // false-positive rate to hold on them, 0 <= fpr < 1
  std::string score;     // "" = the model's calibrated kind, else kDefaultScore
  std::string output;    // write the calibrated export here instead (required for a checkpoint)
  int64_t max_pixels = kDefaultMaxPixels;
  bool progress_tty = false;
};

struct CalibrateResult {
  Calibration calibration;
  std::string written;                // the model file written
  int64_t flagged = 0;                // normal images above the threshold
  std::vector<std::string> failures;  // unreadable normal images (not in the statistics)
};

CalibrateResult calibrate(const CalibrateOptions& options, const Logger& log);

struct AnomalyEvalOptions {
  std::string model;                   // required
  std::vector<std::string> normal;     // folders (or files) of normal test images; required
  std::vector<std::string> anomalous;  // folders (or files) of anomalous test images, one
                                       // category each (its name is the folder's); required
  std::string masks;                   // "" = image figures only; else ground-truth masks, for
                                       // anomalous file REL in folder CAT: MASKS/CAT/STEM_mask.png,
                                       // MASKS/CAT/STEM.png, MASKS/STEM_mask.png or MASKS/STEM.png
                                       // (binarised at > 127; sized as the image)
  double max_fpr = 0.3;                // PRO's integration limit (MVTec AD's)
  int64_t max_pixels = kDefaultMaxPixels;
  bool progress_tty = false;
};

struct CategoryResult {
  std::string name;
  int64_t count = 0;
  double auroc[kScoreKinds] = {};
};

struct AnomalyEvalResult {
  std::string model;
  int image_size = 0;
  int64_t normal_count = 0, anomalous_count = 0;
  double auroc[kScoreKinds] = {};  // image AUROC by ScoreKind
  std::vector<CategoryResult> categories;
  bool masks = false;
  double pixel_auroc_mse = 0, pixel_auroc_ssim = 0;  // by map
  double pro_mse = 0, pro_ssim = 0;
  int64_t regions = 0;
  bool calibrated = false;  // the model's threshold applied to this set
  ScoreKind calibrated_score = kDefaultScore;
  double threshold = 0, tpr = 0, fpr = 0;
  std::vector<std::string> failures;
  double seconds = 0;
};

AnomalyEvalResult evaluate_anomaly(const AnomalyEvalOptions& options, const Logger& log);
std::string anomaly_eval_table(const AnomalyEvalResult& result);
std::string anomaly_eval_json(const AnomalyEvalResult& result);

struct EncodeOptions {
  std::vector<std::string> inputs;  // image files or folders; required
  std::string model;                // required
  std::string output;               // latents.csv or latents.npy (latent_io.h); required
  int64_t max_pixels = kDefaultMaxPixels;
  bool progress_tty = false;
};

struct EncodeReport {
  int64_t done = 0;
  size_t dims = 0;                       // length of each latent vector
  std::vector<int64_t> code_shape;       // channels, rows, columns of the code
  std::vector<std::string> failures;     // files not encoded (unreadable, another size)
};

// Every latent has the same length: a model with an image size resizes each image to it; a model
// without one needs images of one size (the first image's; others fail by name).
EncodeReport encode_files(const EncodeOptions& options, const Logger& log);

struct DecodeOptions {
  std::string latents;   // .csv or .npy written by encode; required
  std::string model;     // the model that encoded them; required
  std::string output;    // folder: one PNG per row, named after its file (NAME.png); required
  int height = 0, width = 0;  // the images' size for a model without an image size
};

struct DecodeReport {
  int64_t done = 0;
  std::vector<std::string> failures;
};

DecodeReport decode_files(const DecodeOptions& options, const Logger& log);

}  // namespace bottleneck

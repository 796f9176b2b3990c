#include "anomaly/anomaly_jobs.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include "anomaly/latent_io.h"
#include "formats/exporter.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/file_jobs.h"
#include "util/progress.h"
#include "util/text_format.h"

namespace fs = std::filesystem;

namespace bottleneck {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct InputImage {
  std::string path;      // as found
  std::string relative;  // inside its input folder ('/'-separated); a lone file: its name
  size_t root = 0;       // index of the input it came from
};

// "FILE: reason" without naming the file twice.
std::string failure_text(const std::string& input, const std::exception& e) {
  const auto* err = dynamic_cast<const Error*>(&e);
  if (err && !err->path().empty()) return first_line(err->what());
  return input + ": " + first_line(err ? err->reason() : std::string(e.what()));
}

// The images of `inputs` (files, or folders searched recursively, sorted). An input that is
// missing or cannot be listed, or a subfolder that cannot, is a failure; the rest go on.
std::vector<InputImage> list_inputs(const std::vector<std::string>& inputs, std::vector<std::string>* failures,
                                    const Logger& log) {
  std::vector<InputImage> out;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string& in = inputs[i];
    std::error_code ec;
    try {
      if (fs::is_directory(in, ec)) {
        std::vector<Error> unlisted;
        for (const std::string& f : list_images(in, &unlisted))
          out.push_back({f, fs::path(f).lexically_relative(in).generic_string(), i});
        for (const Error& e : unlisted) {
          failures->push_back(e.what());
          log.warn(e.what());
        }
      } else if (fs::exists(in, ec)) {
        out.push_back({in, fs::path(in).filename().string(), i});
      } else {
        throw Error(ErrorKind::kIo, in, "no such file or folder");
      }
    } catch (const Error& e) {
      failures->push_back(e.what());
      log.warn(e.what());
    }
  }
  return out;
}

ProgressBar make_bar(size_t total, const std::string& label, bool tty, const Logger& log) {
  ProgressBar::Options o;
  o.label = label;
  o.unit = "images";
  o.tty = tty;
  o.enabled = log.enabled(LogLevel::kInfo);
  return ProgressBar(static_cast<int64_t>(total), 0, o, std::cerr);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

ScoreKind kind_for(const std::string& asked, const AnomalyModel& model) {
  if (!asked.empty()) return parse_score_kind(asked);
  return model.calibration().present ? model.calibration().score : kDefaultScore;
}

// Scores every readable image of `images` with `model`; a failure is recorded and skipped.
// `each` receives the image, its scores (maps when asked) and its tensor.
template <typename Each>
void score_each(const AnomalyModel& model, const std::vector<InputImage>& images, bool maps, int64_t max_pixels,
                const std::string& label, bool tty, const Logger& log, std::vector<std::string>* failures, Each each,
                bool codes = false) {
  ProgressBar bar = make_bar(images.size(), label, tty, log);
  int64_t n = 0;
  for (const InputImage& image : images) {
    try {
      const ImageData data = load_image(image.path, max_pixels);
      each(image, model.score(data.pixels, maps, codes), data.pixels);
    } catch (const std::exception& e) {
      failures->push_back(failure_text(image.path, e));
      log.warn(failures->back());
    }
    if (++n < static_cast<int64_t>(images.size())) bar.update(n, "");
  }
  bar.finish("");
}

std::string stem_of(const std::string& relative) {
  fs::path p(relative);
  return (p.parent_path() / p.stem()).generic_string();
}

// The calibrated export's bytes: the model's archive with new metadata, saved from memory so
// the bytes do not depend on the temporary's name (as export_model does).
std::string export_with_metadata(const std::string& source, const std::string& metadata) {
  torch::jit::ExtraFilesMap extra{{kTorchScriptMetadataFile, ""}};
  torch::jit::Module module = torch::jit::load(source, c10::Device(c10::kCPU), extra);
  std::ostringstream bytes;
  module.save(bytes, {{kTorchScriptMetadataFile, metadata}});
  return bytes.str();
}

}  // namespace

ScoreReport score_files(const ScoreOptions& o, const Logger& log) {
  if (o.inputs.empty()) throw UsageError("give the images to score");
  if (o.model.empty()) throw UsageError("--model is required");
  const AnomalyModel model = AnomalyModel::load(o.model);
  ScoreReport report;
  report.kind = kind_for(o.score, model);
  if (uses_latent(report.kind) && !model.calibration().latent.present)
    throw UsageError("--score " + std::string(name_of(report.kind)) + " needs the normal codes' statistics, which " + o.model +
                     " lacks: calibrate it first (bottleneck calibrate --normal DIR)");
  report.calibrated = model.calibration().present && model.calibration().score == report.kind;
  report.threshold = report.calibrated ? model.calibration().threshold : kNaN;
  if (model.calibration().present && !report.calibrated)
    log.warn(o.model, ": calibrated for --score ", name_of(model.calibration().score), ", not ", name_of(report.kind),
             ": no image is flagged");
  std::vector<InputImage> images = list_inputs(o.inputs, &report.failures, log);
  if (!o.output.empty()) {
    const fs::path out = resolved(o.output);
    for (const std::string& in : o.inputs) {
      std::error_code ec;
      if (fs::is_directory(in, ec) && is_inside(out, resolved(in)))
        throw UsageError("--output " + o.output + " lies inside the input folder " + in +
                         ": its pictures would be scored next time; choose a folder outside it");
    }
    std::map<std::string, std::string> taken;
    for (const InputImage& image : images) {
      const std::string name = stem_of(image.relative);
      const auto [it, inserted] = taken.emplace(name, image.path);
      if (!inserted)
        throw UsageError(image.path + " and " + it->second + " would both write " + o.output + "/" + name +
                         ".heat.png; score them into separate folders");
    }
  }
  if (images.empty() && report.failures.empty()) throw Error(ErrorKind::kInvalidData, o.inputs[0], "no images found");
  const auto start = std::chrono::steady_clock::now();
  const Calibration& c = model.calibration();
  score_each(model, images, !o.output.empty(), o.max_pixels, "score", o.progress_tty, log, &report.failures,
             [&](const InputImage& image, const ImageScores& s, const torch::Tensor& pixels) {
    ScoredFile row;
    row.file = image.path;
    row.score = s.score[static_cast<int>(report.kind)];
    if (report.calibrated) {
      // As calibrate and eval compare: in float, the precision the threshold was chosen in, so a
      // normal image at the threshold is not flagged by rounding.
      row.is_anomaly = static_cast<float>(row.score) > report.threshold ? 1 : 0;
      report.anomalies += row.is_anomaly;
    }
    if (!o.output.empty()) {
      const std::string base = (fs::path(o.output) / stem_of(image.relative)).string();
      for (const std::string& p : {base + ".heat.png", base + ".map.png"}) refuse_output_over_input(p, {image.path}, "heat map");
      make_output_folder(base + ".heat.png", o.output);
      const cv::Mat& map = s.map(report.kind);
      save_mat(base + ".heat.png", heat_map_picture(pixels, map, c.present && uses_ssim_map(c.score) == uses_ssim_map(report.kind) ? c.map_scale : 0));
      save_mat(base + ".map.png", raw_map_samples(map));
    }
    report.rows.push_back(row);
  });
  report.seconds = seconds_since(start);
  return report;
}

std::string scores_csv(const ScoreReport& r) {
  std::ostringstream s;
  s.precision(9);
  s << "file,score,is_anomaly\n";
  for (const ScoredFile& row : r.rows) {
    std::string file = row.file;
    if (file.find_first_of(",\"\n\r") != std::string::npos) {
      std::string q = "\"";
      for (char ch : file) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
      file = q + "\"";
    }
    s << file << "," << row.score << "," << (row.is_anomaly < 0 ? "" : std::to_string(row.is_anomaly)) << "\n";
  }
  return s.str();
}

CalibrateResult calibrate(const CalibrateOptions& o, const Logger& log) {
  if (o.model.empty()) throw UsageError("--model is required");
  if (o.normal.empty()) throw UsageError("--normal DIR is required (images without anomalies)");
  if (!(o.fpr >= 0 && o.fpr < 1)) throw UsageError("--fpr must be >= 0 and below 1");
  AnomalyModel model = AnomalyModel::load(o.model);
  if (!model.is_export() && o.output.empty())
    throw UsageError(o.model, "is a training checkpoint, which holds no calibration: give --output FILE.pt for the "
                              "calibrated export (or export it first: bottleneck export)");
  const std::string target = o.output.empty() ? o.model : o.output;
  CalibrateResult result;
  const ScoreKind kind = kind_for(o.score, model);
  // A calibration replaces the old one whole: its latent Gaussian must not score these images.
  model.clear_calibration();
  std::vector<InputImage> images = list_inputs({o.normal}, &result.failures, log);
  if (target != o.model) refuse_output_over_input(target, {o.model}, "calibrated model");
  std::vector<float> scores, map_maxima, codes;
  std::vector<double> coarse;
  int64_t dims = -1;
  bool one_length = true;
  score_each(model, images, false, o.max_pixels, "calibrate", o.progress_tty, log, &result.failures,
             [&](const InputImage&, const ImageScores& s, const torch::Tensor&) {
    scores.push_back(static_cast<float>(s.score[static_cast<int>(kind)]));
    map_maxima.push_back(static_cast<float>(s.score[static_cast<int>(uses_ssim_map(kind) ? ScoreKind::kSsimMax : ScoreKind::kMseMax)]));
    coarse.push_back(s.score[static_cast<int>(ScoreKind::kMseCoarse)]);
    if (dims < 0) dims = static_cast<int64_t>(s.code.size());
    one_length = one_length && static_cast<int64_t>(s.code.size()) == dims;
    if (one_length && dims <= kMaxLatentDims) codes.insert(codes.end(), s.code.begin(), s.code.end());
  }, /*codes=*/true);
  if (scores.empty()) throw Error(ErrorKind::kInvalidData, o.normal, "no readable normal images to calibrate on");
  Calibration& c = result.calibration;
  std::string why;
  c.latent = one_length ? fit_latent_gaussian(codes, dims, coarse, &why) : LatentGaussian{};
  if (!one_length) why = "the images' codes differ in length (images of different sizes, a model without --resize)";
  if (!c.latent.present) {
    if (uses_latent(kind)) throw Error(ErrorKind::kInvalidData, o.normal, "--score " + std::string(name_of(kind)) + ": " + why);
    log.info("no latent scores: ", why);
  } else if (uses_latent(kind)) {
    // The latent kinds of these images, from the Gaussian just fitted on them.
    for (size_t i = 0; i < scores.size(); ++i) {
      const double d = c.latent.distance(codes.data() + i * static_cast<size_t>(dims), dims);
      scores[i] = static_cast<float>(kind == ScoreKind::kLatent ? d : c.latent.blend(coarse[i], d));
    }
  }
  c.present = true;
  c.score = kind;
  c.fpr = o.fpr;
  c.threshold = threshold_at_fpr(scores, o.fpr);
  c.normal = score_stats(scores);
  c.map_scale = score_stats(map_maxima).p99;
  c.normal_dir = o.normal;
  for (float s : scores) result.flagged += s > c.threshold ? 1 : 0;

  if (!model.is_export()) {
    // A checkpoint: export it first (checked against the network), then add the calibration.
    ExportOptions e;
    e.checkpoint = o.model;
    e.output = target;
    export_model(e);
  }
  const AnomalyModel base = model.is_export() ? model : AnomalyModel::load(target);
  const std::string bytes = export_with_metadata(model.is_export() ? o.model : target, base.metadata_with(c));
  write_file_atomically(target, bytes.data(), bytes.size());
  // Read back: the file must load and carry what was written.
  const AnomalyModel check = AnomalyModel::load(target);
  if (!check.calibration().present || check.calibration().threshold != c.threshold)
    throw Error(target, "the calibrated model does not read back its threshold");
  result.written = target;
  return result;
}

namespace {

// The mask of anomalous image `image` (in category folder `category`), or an empty Mat when no
// candidate exists.
std::string find_mask(const std::string& masks, const std::string& category, const std::string& relative) {
  const std::string stem = stem_of(relative);
  const std::string ext = fs::path(relative).extension().string();
  std::vector<std::string> candidates;
  for (const std::string& dir : {(fs::path(masks) / category).string(), masks})
    for (const std::string& name : {stem + "_mask.png", stem + ".png", stem + "_mask" + ext, stem + ext})
      candidates.push_back((fs::path(dir) / name).string());
  std::error_code ec;
  for (const std::string& c : candidates)
    if (fs::is_regular_file(c, ec)) return c;
  return "";
}

cv::Mat read_mask(const std::string& path, int rows, int cols, int64_t max_pixels) {
  const ImageData mask = load_image(path, max_pixels);
  const torch::Tensor gray = to_channels(mask.pixels, 1)[0].contiguous();
  if (gray.size(0) != rows || gray.size(1) != cols)
    throw Error(ErrorKind::kInvalidData, path, "mask is " + std::to_string(gray.size(1)) + " x " + std::to_string(gray.size(0)) +
                                                   ", its image " + std::to_string(cols) + " x " + std::to_string(rows));
  cv::Mat m(rows, cols, CV_32F, const_cast<float*>(gray.data_ptr<float>()));
  cv::Mat binary = m > (127.5 / 255.0);  // CV_8U 0 / 255
  return binary.clone();
}

void add_pixels(const cv::Mat& map, const cv::Mat& mask, PixelScores* pixels) {
  cv::Mat labels;
  const int regions = mask.empty() ? 1 : cv::connectedComponents(mask, labels, 8, CV_32S);
  const size_t first = pixels->regions.size();
  pixels->regions.resize(first + static_cast<size_t>(regions - 1));
  for (int y = 0; y < map.rows; ++y) {
    const float* m = map.ptr<float>(y);
    const int* l = mask.empty() ? nullptr : labels.ptr<int>(y);
    for (int x = 0; x < map.cols; ++x) {
      if (!l || l[x] == 0) pixels->normal.push_back(m[x]);
      else pixels->regions[first + static_cast<size_t>(l[x] - 1)].push_back(m[x]);
    }
  }
}

std::string category_name(const std::string& input) {
  fs::path p = fs::path(input).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

}  // namespace

AnomalyEvalResult evaluate_anomaly(const AnomalyEvalOptions& o, const Logger& log) {
  if (o.model.empty()) throw UsageError("--model is required");
  if (o.normal.empty() || o.anomalous.empty()) throw UsageError("--normal DIR and --anomalous DIR are required");
  const AnomalyModel model = AnomalyModel::load(o.model);
  AnomalyEvalResult r;
  r.model = o.model;
  r.image_size = model.image_size();
  r.masks = !o.masks.empty();
  const auto start = std::chrono::steady_clock::now();
  std::vector<float> normal[kScoreKinds], anomalous[kScoreKinds];
  // The latent kinds need the calibration's Gaussian; without it they are NaN (absent).
  const auto available = [&](int k) { return !uses_latent(static_cast<ScoreKind>(k)) || model.calibration().latent.present; };
  PixelScores pixels_mse, pixels_ssim;
  const std::vector<InputImage> normal_images = list_inputs(o.normal, &r.failures, log);
  score_each(model, normal_images, r.masks, o.max_pixels, "normal", o.progress_tty, log, &r.failures,
             [&](const InputImage&, const ImageScores& s, const torch::Tensor&) {
    for (int k = 0; k < kScoreKinds; ++k) normal[k].push_back(static_cast<float>(s.score[k]));
    if (r.masks) {
      add_pixels(s.error_map, cv::Mat(), &pixels_mse);
      add_pixels(s.ssim_map, cv::Mat(), &pixels_ssim);
    }
  });
  for (size_t a = 0; a < o.anomalous.size(); ++a) {
    CategoryResult category;
    category.name = category_name(o.anomalous[a]);
    std::vector<float> scores[kScoreKinds];
    const std::vector<InputImage> images = list_inputs({o.anomalous[a]}, &r.failures, log);
    score_each(model, images, r.masks, o.max_pixels, category.name, o.progress_tty, log, &r.failures,
               [&](const InputImage& image, const ImageScores& s, const torch::Tensor& pixels) {
      cv::Mat mask;
      if (r.masks) {
        const std::string path = find_mask(o.masks, category.name, image.relative);
        if (path.empty())
          throw Error(ErrorKind::kInvalidData, image.path, "no mask for it under " + o.masks + " (looked for " +
                                                               category.name + "/" + stem_of(image.relative) + "_mask.png and others)");
        mask = read_mask(path, static_cast<int>(pixels.size(1)), static_cast<int>(pixels.size(2)), o.max_pixels);
      }
      for (int k = 0; k < kScoreKinds; ++k) scores[k].push_back(static_cast<float>(s.score[k]));
      if (r.masks) {
        add_pixels(s.error_map, mask, &pixels_mse);
        add_pixels(s.ssim_map, mask, &pixels_ssim);
      }
    });
    category.count = static_cast<int64_t>(scores[0].size());
    for (int k = 0; k < kScoreKinds; ++k) {
      category.auroc[k] = available(k) ? auroc(scores[k], normal[k]) : kNaN;
      anomalous[k].insert(anomalous[k].end(), scores[k].begin(), scores[k].end());
    }
    r.categories.push_back(category);
  }
  r.normal_count = static_cast<int64_t>(normal[0].size());
  r.anomalous_count = static_cast<int64_t>(anomalous[0].size());
  if (r.normal_count == 0 || r.anomalous_count == 0)
    throw Error(ErrorKind::kInvalidData, r.normal_count == 0 ? o.normal[0] : o.anomalous[0], "no readable images to evaluate");
  for (int k = 0; k < kScoreKinds; ++k) r.auroc[k] = available(k) ? auroc(anomalous[k], normal[k]) : kNaN;
  if (r.masks) {
    r.regions = static_cast<int64_t>(pixels_mse.regions.size());
    r.pixel_auroc_mse = pixel_auroc(pixels_mse);
    r.pixel_auroc_ssim = pixel_auroc(pixels_ssim);
    r.pro_mse = pro_score(pixels_mse, o.max_fpr);
    r.pro_ssim = pro_score(pixels_ssim, o.max_fpr);
  }
  const Calibration& c = model.calibration();
  if (c.present) {
    r.calibrated = true;
    r.calibrated_score = c.score;
    r.threshold = c.threshold;
    const int k = static_cast<int>(c.score);
    int64_t tp = 0, fp = 0;
    for (float s : anomalous[k]) tp += s > c.threshold ? 1 : 0;
    for (float s : normal[k]) fp += s > c.threshold ? 1 : 0;
    r.tpr = static_cast<double>(tp) / static_cast<double>(r.anomalous_count);
    r.fpr = static_cast<double>(fp) / static_cast<double>(r.normal_count);
  }
  r.seconds = seconds_since(start);
  return r;
}

std::string anomaly_eval_table(const AnomalyEvalResult& r) {
  std::ostringstream s;
  s << "model " << r.model << " (images at " << (r.image_size > 0 ? std::to_string(r.image_size) + " x " + std::to_string(r.image_size) : std::string("their own size"))
    << "); " << r.normal_count << " normal, " << r.anomalous_count << " anomalous images\n\n";
  s << "| image AUROC | all";
  for (const CategoryResult& c : r.categories) s << " | " << c.name << " (" << c.count << ")";
  s << " |\n|---|--:";
  for (size_t i = 0; i < r.categories.size(); ++i) s << "|--:";
  s << "|\n";
  for (int k = 0; k < kScoreKinds; ++k) {
    s << "| " << name_of(static_cast<ScoreKind>(k)) << " | " << table_cell(r.auroc[k], 4);
    for (const CategoryResult& c : r.categories) s << " | " << table_cell(c.auroc[k], 4);
    s << " |\n";
  }
  if (r.masks) {
    s << "\n| map | pixel AUROC | PRO (FPR <= 0.3) |\n|---|--:|--:|\n"
      << "| squared error | " << table_cell(r.pixel_auroc_mse, 4) << " | " << table_cell(r.pro_mse, 4) << " |\n"
      << "| SSIM | " << table_cell(r.pixel_auroc_ssim, 4) << " | " << table_cell(r.pro_ssim, 4) << " |\n"
      << "(" << r.regions << " defect regions)\n";
  }
  if (!std::isfinite(r.auroc[static_cast<int>(ScoreKind::kLatent)]))
    s << "\n(latent, coarse-latent: the model has no latent Gaussian; calibrate it on normal images first)\n";
  if (r.calibrated)
    s << "\ncalibrated threshold (" << name_of(r.calibrated_score) << " > " << significant(r.threshold, 6)
      << "): TPR " << fixed(r.tpr, 4) << ", FPR " << fixed(r.fpr, 4) << "\n";
  return s.str();
}

std::string anomaly_eval_json(const AnomalyEvalResult& r) {
  using Json = nlohmann::ordered_json;
  Json j;
  j["model"] = r.model;
  j["image_size"] = r.image_size;
  j["normal_images"] = r.normal_count;
  j["anomalous_images"] = r.anomalous_count;
  Json image;
  for (int k = 0; k < kScoreKinds; ++k) image[name_of(static_cast<ScoreKind>(k))] = json_number<Json>(r.auroc[k]);
  j["image_auroc"] = image;
  Json cats = Json::array();
  for (const CategoryResult& c : r.categories) {
    Json e;
    e["name"] = c.name;
    e["images"] = c.count;
    for (int k = 0; k < kScoreKinds; ++k) e["auroc"][name_of(static_cast<ScoreKind>(k))] = json_number<Json>(c.auroc[k]);
    cats.push_back(e);
  }
  j["categories"] = cats;
  if (r.masks) {
    j["pixel_auroc"] = {{"mse", json_number<Json>(r.pixel_auroc_mse)}, {"ssim", json_number<Json>(r.pixel_auroc_ssim)}};
    j["pro"] = {{"mse", json_number<Json>(r.pro_mse)}, {"ssim", json_number<Json>(r.pro_ssim)}};
    j["regions"] = r.regions;
  }
  if (r.calibrated)
    j["calibrated"] = {{"score", name_of(r.calibrated_score)}, {"threshold", r.threshold}, {"tpr", r.tpr}, {"fpr", r.fpr}};
  j["failures"] = r.failures;
  j["seconds"] = r.seconds;
  return j.dump(2) + "\n";
}

EncodeReport encode_files(const EncodeOptions& o, const Logger& log) {
  if (o.inputs.empty()) throw UsageError("give the images to encode");
  if (o.model.empty()) throw UsageError("--model is required");
  if (o.output.empty()) throw UsageError("-o latents.csv or latents.npy is required");
  latent_format(o.output);
  const AnomalyModel model = AnomalyModel::load(o.model);
  EncodeReport report;
  const std::vector<InputImage> images = list_inputs(o.inputs, &report.failures, log);
  std::vector<std::string> paths;
  for (const InputImage& i : images) paths.push_back(i.path);
  refuse_output_over_input(o.output, paths, "latents file");
  LatentTable table;
  int64_t rows = -1, cols = -1;
  ProgressBar bar = make_bar(images.size(), "encode", o.progress_tty, log);
  int64_t n = 0;
  for (const InputImage& image : images) {
    try {
      const torch::Tensor x = model.prepare(load_image(image.path, o.max_pixels).pixels);
      if (rows < 0) {
        rows = x.size(1);
        cols = x.size(2);
      } else if (x.size(1) != rows || x.size(2) != cols) {
        throw Error(ErrorKind::kInvalidData, image.path,
                    "is " + std::to_string(x.size(2)) + " x " + std::to_string(x.size(1)) + ", the first image " +
                        std::to_string(cols) + " x " + std::to_string(rows) +
                        ": one latents file needs one size (train with --resize for a model that resizes)");
      }
      const torch::Tensor code = model.encode(x.unsqueeze(0)).contiguous();
      if (report.code_shape.empty()) report.code_shape = code.sizes().slice(1).vec();
      table.dims = static_cast<size_t>(code.numel());
      const float* v = code.data_ptr<float>();
      table.values.insert(table.values.end(), v, v + code.numel());
      table.files.push_back(image.path);
      ++report.done;
    } catch (const std::exception& e) {
      report.failures.push_back(failure_text(image.path, e));
      log.warn(report.failures.back());
    }
    if (++n < static_cast<int64_t>(images.size())) bar.update(n, "");
  }
  bar.finish("");
  if (report.done == 0) throw Error(ErrorKind::kInvalidData, o.inputs[0], "no image could be encoded");
  report.dims = table.dims;
  write_latents(o.output, table);
  return report;
}

DecodeReport decode_files(const DecodeOptions& o, const Logger& log) {
  if (o.latents.empty()) throw UsageError("give the latents file to decode");
  if (o.model.empty()) throw UsageError("--model is required");
  if (o.output.empty()) throw UsageError("-o OUTPUT_FOLDER is required");
  const AnomalyModel model = AnomalyModel::load(o.model);
  int64_t h = o.height, w = o.width;
  if (model.image_size() > 0) {
    if ((h > 0 || w > 0) && (h != model.image_size() || w != model.image_size()))
      throw UsageError("--size: " + o.model + " makes " + std::to_string(model.image_size()) + " x " +
                       std::to_string(model.image_size()) + " images");
    h = w = model.image_size();
  } else if (h <= 0 || w <= 0) {
    throw UsageError(o.model + " has no image size of its own (it was trained at the images' size): give --size WxH");
  }
  const LatentTable table = read_latents(o.latents);
  const std::vector<int64_t> shape = model.code_shape(h, w);
  int64_t expected = 1;
  for (int64_t d : shape) expected *= d;
  if (static_cast<int64_t>(table.dims) != expected)
    throw Error(ErrorKind::kInvalidData, o.latents, "holds vectors of " + std::to_string(table.dims) + " values; " + o.model +
                                                        " decodes " + std::to_string(expected) + " (" + shape_text(shape) +
                                                        ") for " + std::to_string(w) + " x " + std::to_string(h) + " images");
  DecodeReport report;
  std::set<std::string> taken;
  fs::create_directories(o.output);
  for (size_t r = 0; r < table.files.size(); ++r) {
    std::string name = fs::path(table.files[r]).stem().string();
    if (name.empty()) name = std::to_string(r);
    if (!taken.insert(name).second) taken.insert(name += "-" + std::to_string(r));
    const std::string out = (fs::path(o.output) / (name + ".png")).string();
    try {
      std::vector<int64_t> dims = {1};
      dims.insert(dims.end(), shape.begin(), shape.end());
      const torch::Tensor code =
          torch::from_blob(const_cast<float*>(table.values.data() + r * table.dims), dims, torch::kFloat).clone();
      const torch::Tensor y = model.decode(code, h, w).clamp(0, 1)[0];
      ImageData image;
      image.pixels = y;
      image.depth = CV_8U;
      save_image(out, image);
      ++report.done;
    } catch (const std::exception& e) {
      report.failures.push_back(failure_text(out, e));
      log.warn(report.failures.back());
    }
  }
  return report;
}

}  // namespace bottleneck

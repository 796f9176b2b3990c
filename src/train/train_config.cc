#include "train/train_config.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "data/noise.h"
#include "train/train_fields.h"

namespace bottleneck {

namespace {

// Upper limits that only a typo reaches: a billion steps is years of training on any machine
// this runs on; Adam with a learning rate above 1 diverges on every network here; patches
// larger than 4096 pixels a side are larger than the images (and the memory estimate refuses
// most of them anyway).
constexpr int64_t kMaxSteps = 1000000000;
constexpr double kMaxEpochs = 1e6;
constexpr int kMaxPatch = 4096;
constexpr int kMaxSamples = 1000;
constexpr int kMaxLoaderWorkers = 256;
constexpr int64_t kMaxPixelsLimit = int64_t{1} << 40;

std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
std::string number_text(int64_t v) { return std::to_string(v); }

// "" when lo <= v <= hi (NaN never is), else the reason.
template <typename T>
std::string outside(T v, T lo, T hi) {
  if (v >= lo && v <= hi) return "";
  using Text = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
  return "must be from " + number_text(Text(lo)) + " to " + number_text(Text(hi)) + ", got " + number_text(Text(v));
}

// The checks of one field on its own, each reported by its config key with "" for a good value;
// the CLI flag is the key with '-' for '_' (validate()). The checks that relate two fields are
// validate()'s alone: a config file may hold one of them and a flag the other.
template <typename Report>
void check_fields(const TrainOptions& o, Report&& report) {
  auto noise_problem = [](const std::string& spec) -> std::string {
    if (spec.empty()) return "";
    try {
      parse_noise(spec);
      return "";
    } catch (const Error& e) {
      return e.reason();
    }
  };
  report("task", o.task == "denoise" || o.task == "compress" || o.task == "reconstruct"
                     ? ""
                     : "must be denoise, compress or reconstruct, got " + o.task);
  report("resize", outside(o.resize, 0, kMaxPatch));
  report("noise", noise_problem(o.noise));
  report("val_noise", noise_problem(o.val_noise));
  report("patch", outside(o.patches.patch, 8, kMaxPatch));
  report("batch", outside(o.patches.batch, 1, std::numeric_limits<int>::max()));
  report("processes", outside(o.processes, 1, 1 << 20));
  report("iters", outside<int64_t>(o.iterations, 1, kMaxSteps));
  report("epochs", outside(o.epochs, 0.0, kMaxEpochs));
  report("lr", o.lr > 0 && o.lr <= 1 ? "" : "must be > 0 and at most 1, got " + number_text(o.lr));
  report("lr_min", outside(o.lr_min, 0.0, 1.0));
  report("schedule", o.schedule == "cosine" || o.schedule == "step" || o.schedule == "constant"
                         ? ""
                         : "must be cosine, step or constant, got " + o.schedule);
  report("step_size", outside<int64_t>(o.step_size, 1, kMaxSteps));
  report("step_gamma", o.step_gamma > 0 && o.step_gamma <= 1 ? "" : "must be > 0 and at most 1, got " +
                                                                        number_text(o.step_gamma));
  report("loss", o.loss == "mse" || o.loss == "l1" ? "" : "must be mse or l1, got " + o.loss);
  report("precision", o.precision == "fp32" || o.precision == "bf16" ? "" : "must be fp32 or bf16, got " + o.precision);
  report("val_every", outside<int64_t>(o.val_every, 1, kMaxSteps));
  report("checkpoint_every", outside<int64_t>(o.checkpoint_every, 1, kMaxSteps));
  report("log_every", outside<int64_t>(o.log_every, 1, kMaxSteps));
  report("samples", outside(o.samples, 0, kMaxSamples));
  report("val_max_images", outside(o.val_max_images, 0, std::numeric_limits<int>::max()));
  report("workers", outside(o.loader_workers, 1, kMaxLoaderWorkers));
  report("max_pixels", outside<int64_t>(o.max_pixels, 1, kMaxPixelsLimit));
  std::string lambdas = o.lambdas.empty() || o.lambdas.size() > 64 ? "must give 1 to 64 values" : "";
  for (double l : o.lambdas)
    if (lambdas.empty() && !(l > 0 && l <= 100)) lambdas = "must each be > 0 and at most 100, got " + number_text(l);
  // Rate 0 is quality 1: --quality and the gains' interpolation walk the ladder upwards.
  for (size_t i = 1; i < o.lambdas.size(); ++i)
    if (lambdas.empty() && !(o.lambdas[i] > o.lambdas[i - 1])) lambdas = "must be in increasing order";
  report("lambdas", lambdas);
  report("codec_n", outside(o.codec_n, 1, 4096));
  report("codec_m", outside(o.codec_m, 1, 4096));
  report("codec_activation", o.codec_activation == "relu" || o.codec_activation == "gdn"
                                 ? ""
                                 : "must be relu or gdn, got " + o.codec_activation);
  report("codec_prior", o.codec_prior == "step" || o.codec_prior == "gained" ? ""
                                                                             : "must be step or gained, got " + o.codec_prior);
}

// "--val-every" for "val_every".
std::string flag_name(const std::string& key) {
  std::string flag = "--" + key;
  for (char& c : flag)
    if (c == '_') c = '-';
  return flag;
}

}  // namespace

void validate(const TrainOptions& o) {
  auto fail = [](const std::string& what) { throw UsageError(what); };
  if (o.data_dir.empty()) fail("--data is required (a folder of clean training images)");
  if (o.out_dir.empty()) fail("--out is required (the run directory)");
  check_fields(o, [](const char* key, const std::string& problem) {
    if (!problem.empty()) throw UsageError(flag_name(key) + " " + problem);
  });
  validate(o.arch);
  if (o.task == "compress") {
    if (!o.pairs_dir.empty() || !o.val_pairs_dir.empty()) fail("--pairs and --val-pairs are for --task denoise");
    if (o.patches.patch < 16 || o.patches.patch % 16 != 0)
      fail("--patch " + std::to_string(o.patches.patch) + " must be a multiple of 16 (the codec's downsampling)");
  }
  if (o.resize != 0 && o.task != "reconstruct") fail("--resize is for --task reconstruct");
  if (o.standardize && o.task != "reconstruct") fail("--standardize is for --task reconstruct");
  if (o.task == "reconstruct" && o.arch.head == Head::kResidual)
    fail("--task reconstruct needs --head sigmoid or linear (a residual head passes its input through)");
  if (o.arch.in_channels != o.arch.out_channels)
    fail("a denoiser needs as many output channels as input channels");
  if (o.pairs_dir.empty() && o.noise.empty()) fail("--noise is required without --pairs");
  if (!o.val_pairs_dir.empty() && o.val_dir.empty()) fail("--val-pairs needs --val (the clean images of the pairs)");
  if (o.task == "denoise" && o.patches.patch % o.arch.size_multiple() != 0)
    fail("--patch " + std::to_string(o.patches.patch) + " must be a multiple of " +
         std::to_string(o.arch.size_multiple()) + " (2^depth of the network)");
  if (o.arch.dense()) {
    // A dense code fits one input size: training crops, and scoring brings every image to it.
    if (o.task != "reconstruct") fail("--latent (a dense code) is for --task reconstruct");
    if (o.arch.input_size != o.patches.patch)
      fail("--input-size " + std::to_string(o.arch.input_size) + " differs from --patch " +
           std::to_string(o.patches.patch) + ": a dense code is trained on whole images of its input size");
    if (o.resize > 0 && o.resize != o.patches.patch)
      fail("--patch " + std::to_string(o.patches.patch) + " differs from --resize " + std::to_string(o.resize) +
           ": a dense code is trained on whole images (give both the same)");
  }
  if (o.lr_min > o.lr) fail("--lr-min " + number_text(o.lr_min) + " is above --lr " + number_text(o.lr));
}

namespace {

// Reads one JSON value into a field of its exact type: a whole number for an integer field (5.7
// is not silently 5) that the field can hold (1e22 does not wrap), a finite number for a real
// one. Returns what was expected, "" when `out` was set.
template <typename T>
std::string read_value(const nlohmann::json& v, T& out) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return "true or false";
    out = v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    using Limits = std::numeric_limits<T>;
    const std::string expected = "a whole number from " + std::to_string(Limits::min()) + " to " +
                                 std::to_string(Limits::max());
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(Limits::max())) return expected;
      out = static_cast<T>(u);
    } else if (v.is_number_integer()) {
      const int64_t i = v.get<int64_t>();
      if (i < 0 && !Limits::is_signed) return expected;
      if (Limits::is_signed && (i < static_cast<int64_t>(Limits::min()) || i > static_cast<int64_t>(Limits::max())))
        return expected;
      out = static_cast<T>(i);
    } else {
      return expected;
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number() || !std::isfinite(v.get<double>())) return "a finite number";
    out = v.get<double>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return "a string";
    out = v.get<std::string>();
  } else {
    static_assert(std::is_same_v<T, std::vector<double>>);
    if (!v.is_array()) return "an array of numbers";
    T values;
    for (const auto& item : v) {
      double x = 0;
      if (!read_value(item, x).empty()) return "an array of finite numbers";
      values.push_back(x);
    }
    out = std::move(values);
  }
  return "";
}
}  // namespace

std::string to_json(const TrainOptions& options) {
  TrainOptions copy = options;
  nlohmann::ordered_json j;
  visit_train_fields(copy, [&](const char* key, auto& field) { j[key] = field; });
  j["arch"] = nlohmann::ordered_json::parse(to_json(options.arch));
  return j.dump(2);
}

TrainOptions train_options_from_json(const std::string& json_text, TrainOptions base,
                                     const std::string& source_name) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const std::exception& e) {
    throw UsageError(source_name, std::string("not valid JSON: ") + first_line(e.what()));
  }
  if (!j.is_object()) throw UsageError(source_name, "expected a JSON object of training options");
  std::vector<std::string> known = {"arch"};
  visit_train_fields(base, [&](const char* key, auto&) { known.push_back(key); });
  for (const auto& item : j.items())
    if (std::find(known.begin(), known.end(), item.key()) == known.end())
      throw UsageError(source_name, "unknown option \"" + item.key() + "\"");
  visit_train_fields(base, [&](const char* key, auto& field) {
    if (!j.contains(key)) return;
    const std::string expected = read_value(j.at(key), field);
    if (!expected.empty())
      throw UsageError(source_name, "\"" + std::string(key) + "\" must be " + expected + ", got " + j.at(key).dump());
  });
  check_fields(base, [&](const char* key, const std::string& problem) {
    if (!problem.empty() && j.contains(key)) throw UsageError(source_name, "\"" + std::string(key) + "\" " + problem);
  });
  // A codec run's config written before "codec_prior" existed (it has the other codec fields,
  // which every written config has) is a run of the prior there was then.
  if (j.contains("codec_activation") && !j.contains("codec_prior")) base.codec_prior = "gained";
  if (j.contains("arch")) {
    try {
      base.arch = arch_spec_from_json(j.at("arch").dump());
    } catch (const Error& e) {
      throw UsageError(source_name, "\"arch\": " + e.reason());
    }
  }
  return base;
}

}  // namespace bottleneck

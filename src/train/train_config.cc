#include "train/train_config.h"

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "data/noise.h"

namespace bottleneck {

void validate(const TrainOptions& o) {
  auto fail = [](const std::string& what) { throw UsageError(what); };
  if (o.data_dir.empty()) fail("--data is required (a folder of clean training images)");
  if (o.out_dir.empty()) fail("--out is required (the run directory)");
  validate(o.arch);
  if (o.task != "denoise" && o.task != "compress") fail("--task must be denoise or compress, got " + o.task);
  if (o.task == "compress") {
    if (!o.pairs_dir.empty() || !o.val_pairs_dir.empty()) fail("--pairs and --val-pairs are for --task denoise");
    if (!o.init.empty()) fail("--init is for --task denoise");
    if (o.lambdas.empty() || o.lambdas.size() > 64) fail("--lambdas must give 1 to 64 values");
    for (double l : o.lambdas)
      if (!(l > 0 && l <= 100)) fail("--lambdas: every lambda must be in (0, 100], got " + std::to_string(l));
    if (o.codec_n < 1 || o.codec_n > 4096) fail("--codec-n must be in 1..4096");
    if (o.codec_m < 1 || o.codec_m > 4096) fail("--codec-m must be in 1..4096");
    if (o.codec_activation != "relu" && o.codec_activation != "gdn")
      fail("--codec-activation must be relu or gdn, got " + o.codec_activation);
    if (o.patch < 16 || o.patch % 16 != 0)
      fail("--patch " + std::to_string(o.patch) + " must be a multiple of 16 (the codec's downsampling)");
  }
  if (o.arch.in_channels != o.arch.out_channels)
    fail("a denoiser needs as many output channels as input channels");
  if (o.pairs_dir.empty()) parse_noise(o.noise);
  if (!o.val_noise.empty()) parse_noise(o.val_noise);
  if (!o.val_pairs_dir.empty() && o.val_dir.empty()) fail("--val-pairs needs --val (the clean images of the pairs)");
  if (o.patch < 8) fail("--patch must be >= 8, got " + std::to_string(o.patch));
  if (o.task == "denoise" && o.patch % o.arch.size_multiple() != 0)
    fail("--patch " + std::to_string(o.patch) + " must be a multiple of " +
         std::to_string(o.arch.size_multiple()) + " (2^depth of the network)");
  if (o.batch < 1) fail("--batch must be >= 1");
  if (o.iterations < 1) fail("--iters must be >= 1");
  if (!(o.epochs >= 0)) fail("--epochs must be >= 0");
  if (!(o.lr > 0)) fail("--lr must be > 0");
  if (!(o.lr_min >= 0 && o.lr_min <= o.lr)) fail("--lr-min must be in [0, lr]");
  if (o.schedule != "cosine" && o.schedule != "step" && o.schedule != "constant")
    fail("--schedule must be cosine, step or constant, got " + o.schedule);
  if (o.step_size < 1) fail("--step-size must be >= 1");
  if (!(o.step_gamma > 0 && o.step_gamma <= 1)) fail("--step-gamma must be in (0, 1]");
  if (o.loss != "mse" && o.loss != "l1") fail("--loss must be mse or l1, got " + o.loss);
  if (o.precision != "fp32" && o.precision != "bf16") fail("--precision must be fp32 or bf16, got " + o.precision);
  if (o.val_every < 1) fail("--val-every must be >= 1");
  if (o.checkpoint_every < 1) fail("--checkpoint-every must be >= 1");
  if (o.log_every < 1) fail("--log-every must be >= 1");
  if (o.samples < 0) fail("--samples must be >= 0");
  if (o.val_max_images < 0) fail("--val-max-images must be >= 0");
  if (o.loader_workers < 1) fail("--workers must be >= 1");
  if (o.max_pixels < 1) fail("--max-pixels must be >= 1");
}

namespace {
// One table drives both directions so a field cannot be written but not read.
template <typename Visitor>
void visit_fields(TrainOptions& o, Visitor&& v) {
  v("data", o.data_dir);
  v("pairs", o.pairs_dir);
  v("val", o.val_dir);
  v("val_pairs", o.val_pairs_dir);
  v("init", o.init);
  v("out", o.out_dir);
  v("noise", o.noise);
  v("val_noise", o.val_noise);
  v("patch", o.patch);
  v("batch", o.batch);
  v("iters", o.iterations);
  v("epochs", o.epochs);
  v("lr", o.lr);
  v("lr_min", o.lr_min);
  v("schedule", o.schedule);
  v("step_size", o.step_size);
  v("step_gamma", o.step_gamma);
  v("loss", o.loss);
  v("precision", o.precision);
  v("augment", o.augment);
  v("val_every", o.val_every);
  v("checkpoint_every", o.checkpoint_every);
  v("log_every", o.log_every);
  v("samples", o.samples);
  v("val_max_images", o.val_max_images);
  v("workers", o.loader_workers);
  v("max_pixels", o.max_pixels);
  v("seed", o.seed);
  v("task", o.task);
  v("lambdas", o.lambdas);
  v("codec_n", o.codec_n);
  v("codec_m", o.codec_m);
  v("codec_activation", o.codec_activation);
}
}  // namespace

std::string to_json(const TrainOptions& options) {
  TrainOptions copy = options;
  nlohmann::ordered_json j;
  visit_fields(copy, [&](const char* key, auto& field) { j[key] = field; });
  j["arch"] = nlohmann::ordered_json::parse(to_json(options.arch));
  return j.dump(2);
}

TrainOptions train_options_from_json(const std::string& json_text, TrainOptions base,
                                     const std::string& source_name) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const std::exception& e) {
    throw Error(source_name, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw Error(source_name, "expected a JSON object of training options");
  std::vector<std::string> known = {"arch"};
  visit_fields(base, [&](const char* key, auto& field) {
    known.push_back(key);
    if (!j.contains(key)) return;
    try {
      j.at(key).get_to(field);
    } catch (const std::exception&) {
      throw Error(source_name, std::string("option \"") + key + "\" has the wrong type: " + j.at(key).dump());
    }
  });
  if (j.contains("arch")) base.arch = arch_spec_from_json(j.at("arch").dump());
  for (const auto& item : j.items())
    if (std::find(known.begin(), known.end(), item.key()) == known.end())
      throw Error(source_name, "unknown option \"" + item.key() + "\"");
  return base;
}

}  // namespace bottleneck

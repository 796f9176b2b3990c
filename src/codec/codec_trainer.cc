#include "codec/codec_trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "util/atomic_file.h"
#include "bottleneck/version.h"
#include "formats/checkpoint.h"
#include "codec/codec_file.h"
#include "codec/rans.h"
#include "data/dataset.h"
#include "util/error.h"
#include "image/image_io.h"
#include "image/metrics.h"
#include "data/noise.h"
#include "report/plot.h"
#include "util/seeds.h"
#include "util/text_format.h"
#include "train/metrics_log.h"
#include "train/objective.h"
#include "train/run_directory.h"
#include "train/training_loop.h"

namespace fs = std::filesystem;

namespace bottleneck {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kPeak2 = 255.0 * 255.0;
// Bytes of a .bnc file around one stream's payload (docs/formats.md: 52 + 16 k).
constexpr double kContainerBytes = 52 + 16;

double number_or_nan(const nlohmann::json& j) { return j.is_number() ? j.get<double>() : kNaN; }

// Running figures of the metrics rows (after iteration, lr, loss), then validation figures.
std::vector<std::string> step_columns_for(size_t rates) {
  std::vector<std::string> c = {"bpp", "psnr"};
  for (size_t r = 0; r < rates; ++r)
    for (const char* f : {"loss", "bpp", "psnr"}) c.push_back(std::string(f) + "_r" + std::to_string(r));
  return c;
}

std::vector<std::string> validation_columns_for(size_t rates) {
  std::vector<std::string> c = {"val_rd", "val_psnr"};
  for (size_t r = 0; r < rates; ++r)
    for (const char* f : {"val_bpp", "val_real_bpp", "val_psnr"}) c.push_back(std::string(f) + "_r" + std::to_string(r));
  return c;
}

cv::Scalar rate_color(size_t r, size_t n) {
  const double t = n > 1 ? static_cast<double>(r) / static_cast<double>(n - 1) : 0;
  return cv::Scalar(255 * t, 60, 255 * (1 - t));  // BGR: red (low rate) to blue (high rate)
}

Series series_of(const MetricsLog& m, const std::string& column, const std::string& label, cv::Scalar color) {
  Series s;
  s.name = label;
  s.color = color;
  m.series(column, &s.x, &s.y);
  return s;
}

void write_codec_curves(const std::string& path, const MetricsLog& m, size_t rates) {
  PlotOptions loss_opts;
  loss_opts.title = "training loss (lambda 255^2 MSE + bpp)";
  loss_opts.x_label = "iteration";
  loss_opts.log_y = true;
  PlotOptions psnr_opts;
  psnr_opts.title = "validation PSNR per rate (dB)";
  psnr_opts.x_label = "iteration";
  PlotOptions bpp_opts;
  bpp_opts.title = "validation bpp per rate (estimated)";
  bpp_opts.x_label = "iteration";
  bpp_opts.log_y = true;
  std::vector<Series> psnr_series, bpp_series;
  for (size_t r = 0; r < rates; ++r) {
    const std::string label = "r" + std::to_string(r);
    psnr_series.push_back(series_of(m, "val_psnr_r" + std::to_string(r), label, rate_color(r, rates)));
    bpp_series.push_back(series_of(m, "val_bpp_r" + std::to_string(r), label, rate_color(r, rates)));
  }
  cv::Mat chart;
  cv::vconcat(std::vector<cv::Mat>{plot_lines({series_of(m, "loss", "loss", cv::Scalar(0, 0, 0))}, loss_opts),
                                   plot_lines(psnr_series, psnr_opts), plot_lines(bpp_series, bpp_opts)},
              chart);
  save_mat(path, chart);
}

// Noise of step `it`: its own generator, so the draw depends on (seed, step) only.
at::Generator step_generator(uint64_t seed, int64_t it) {
  return at::detail::createCPUGenerator(splitmix64(splitmix64(seed ^ 0x636f646563ULL) + static_cast<uint64_t>(it)));
}

// Rate index of each patch of step `it`: the rates cycle over the run's patches, so every rate
// gets the same share and the assignment is a pure function of the step. `shard`'s patches of
// the step's batch (data_shard(): patches [index x batch, (index + 1) x batch) of count x batch).
torch::Tensor step_rates(int64_t it, int batch, const DataShard& shard, size_t rates) {
  const int64_t step_patches = static_cast<int64_t>(batch) * shard.count;
  const int64_t first = static_cast<int64_t>(batch) * shard.index;
  auto r = torch::empty({batch}, torch::kLong);
  for (int b = 0; b < batch; ++b) r[b] = (it * step_patches + first + b) % static_cast<int64_t>(rates);
  return r;
}

// The step's noise generator, advanced past the noise of the patches before `shard`'s: torch's
// CPU uniform draws one number per element, in order, so this shard's draws are its slice of the
// whole batch's (N processes train exactly like one with N times the batch).
at::Generator shard_generator(uint64_t seed, int64_t it, const DataShard& shard, int64_t latent_elements_per_patch,
                              int batch) {
  at::Generator g = step_generator(seed, it);
  const int64_t before = static_cast<int64_t>(batch) * shard.index * latent_elements_per_patch;
  if (before > 0) torch::rand({before}, g);
  return g;
}

std::string info_to_json(const CodecCheckpointInfo& info) {
  nlohmann::ordered_json j;
  j["format"] = kCodecCheckpointFormat;
  j["format_version"] = kCodecCheckpointVersion;
  j["project_version"] = info.project_version.empty() ? kVersion : info.project_version;
  j["iteration"] = info.iteration;
  j["best_val_rd"] = json_number<nlohmann::json>(info.best_val_rd);
  j["codec"] = nlohmann::ordered_json::parse(to_json(info.spec));
  j["lambdas"] = info.lambdas;
  j["window"] = info.window;
  j["config"] = info.config_json.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json::parse(info.config_json);
  return j.dump();
}

torch::serialize::InputArchive open_archive(const std::string& path) {
  const std::string bytes = read_file(path);  // clear messages for missing files
  torch::serialize::InputArchive archive;
  try {
    std::istringstream in(bytes);
    archive.load_from(in, torch::kCPU);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kCorrupt, path, "not a readable checkpoint (corrupt or truncated file?): " + first_line(e.what()));
  }
  return archive;
}

CodecCheckpointInfo parse_info(const std::string& path, torch::serialize::InputArchive& archive) {
  c10::IValue value;
  if (!archive.try_read("bottleneck_info", value) || !value.isString())
    throw Error(ErrorKind::kCorrupt, path, "not a Bottleneck checkpoint (no bottleneck_info record)");
  CodecCheckpointInfo info;
  try {
    const auto j = nlohmann::json::parse(value.toStringRef());
    if (j.at("format").get<std::string>() != kCodecCheckpointFormat)
      throw Error(ErrorKind::kInvalidData, path, "not a codec checkpoint (format " + j.at("format").dump() + ")");
    if (j.at("format_version").get<int64_t>() > kCodecCheckpointVersion)
      throw Error(ErrorKind::kUnsupported, path, "codec checkpoint format version " + j.at("format_version").dump() +
                                                     " is newer than this build reads (" +
                                                     std::to_string(kCodecCheckpointVersion) + ")");
    info.project_version = j.at("project_version").get<std::string>();
    info.iteration = j.at("iteration").get<int64_t>();
    info.best_val_rd = number_or_nan(j.at("best_val_rd"));
    info.spec = codec_spec_from_json(j.at("codec").dump());
    info.lambdas = j.at("lambdas").get<std::vector<double>>();
    info.window = j.at("window").get<std::vector<double>>();
    info.config_json = j.at("config").is_null() ? "" : j.at("config").dump(2);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kCorrupt, path, std::string("damaged checkpoint metadata: ") + first_line(e.what()));
  }
  return info;
}

CodecSpec spec_of(const TrainOptions& o) {
  CodecSpec s;
  s.channels = o.arch.in_channels;
  s.n = o.codec_n;
  s.m = o.codec_m;
  s.activation = o.codec_activation;
  s.prior = o.codec_prior;
  s.rates = static_cast<int>(o.lambdas.size());
  return s;
}

}  // namespace

void save_codec_checkpoint(const std::string& path, const CodecModelImpl& model,
                           const torch::optim::Optimizer* optimizer, const CodecCheckpointInfo& info) {
  save_module_archive(path, model, optimizer, info_to_json(info));
}

CodecCheckpointInfo read_codec_checkpoint_info(const std::string& path) {
  auto archive = open_archive(path);
  return parse_info(path, archive);
}

void load_codec_checkpoint_state(const std::string& path, CodecModelImpl& model, torch::optim::Optimizer* optimizer) {
  auto archive = open_archive(path);
  const CodecCheckpointInfo info = parse_info(path, archive);
  if (to_json(info.spec) != to_json(model.spec()))
    throw Error(ErrorKind::kInvalidData, path, "checkpoint is for a different codec network: " + to_json(info.spec));
  load_module_state(path, archive, model, optimizer);
}

namespace {

// log|table| of each channel as a function of log lambda, through the points of `from` (rates x M,
// at from_lambdas), piecewise linear, continued beyond the ends along the end segments: a gain
// is a quantisation step's inverse, and over the trained ladder log gain is close to linear in
// log lambda (the step minimising lambda * MSE + rate goes as lambda^-1/2).
torch::Tensor map_rate_table(const torch::Tensor& from, const std::vector<double>& from_lambdas,
                             const std::vector<double>& to_lambdas) {
  const torch::Tensor log_from = from.abs().clamp_min(1e-12).log();
  const size_t n = from_lambdas.size();
  torch::Tensor out = torch::empty({static_cast<int64_t>(to_lambdas.size()), from.size(1)});
  for (size_t r = 0; r < to_lambdas.size(); ++r) {
    if (n == 1) {
      out[r] = log_from[0];
      continue;
    }
    const double x = std::log(to_lambdas[r]);
    size_t i = 0;  // the segment [i, i + 1] that holds x, or the end segment beyond it
    while (i + 2 < n && x > std::log(from_lambdas[i + 1])) ++i;
    const double x0 = std::log(from_lambdas[i]), x1 = std::log(from_lambdas[i + 1]);
    const double t = (x - x0) / (x1 - x0);
    out[r] = log_from[i] * (1 - t) + log_from[i + 1] * t;
  }
  return out.exp();
}

}  // namespace

void init_codec_from_checkpoint(const std::string& path, CodecModelImpl& model, const std::vector<double>& lambdas) {
  auto archive = open_archive(path);
  CodecCheckpointInfo info = parse_info(path, archive);
  // The prior's kind is how its density is read, not a shape: a model of either kind starts
  // the other (its density then adapts to the other reading).
  info.spec.prior = model.spec().prior;
  const int rates = model.spec().rates;
  info.spec.rates = rates;
  if (to_json(info.spec) != to_json(model.spec()))
    throw Error(ErrorKind::kInvalidData, path, "--init: checkpoint is for a different codec network: " + to_json(info.spec));
  if (info.lambdas == lambdas) {
    load_module_state(path, archive, model, nullptr);
    return;
  }
  // Another rate ladder: everything but the gains as stored; the gains mapped onto the new
  // lambdas (interpolated between trained rates, extrapolated beyond them).
  if (static_cast<int>(lambdas.size()) != rates)
    throw Error("init_codec_from_checkpoint: " + std::to_string(lambdas.size()) + " lambdas for " + std::to_string(rates) + " rates");
  for (size_t i = 1; i < info.lambdas.size(); ++i)
    if (!(info.lambdas[i] > info.lambdas[i - 1]))
      throw Error(ErrorKind::kInvalidData, path, "--init to another rate ladder needs the checkpoint's lambdas in increasing order");
  CodecSpec stored = info.spec;
  stored.rates = static_cast<int>(info.lambdas.size());
  CodecModel from(stored, info.lambdas);
  load_module_state(path, archive, *from, nullptr);
  torch::NoGradGuard no_grad;
  auto source = from->named_parameters();
  for (auto& p : model.named_parameters()) {
    const torch::Tensor& v = source[p.key()];
    if (p.key() == "gain" || p.key() == "inverse_gain") p.value().copy_(map_rate_table(v, info.lambdas, lambdas));
    else p.value().copy_(v);
  }
  auto buffers = from->named_buffers();
  for (auto& b : model.named_buffers()) b.value().copy_(buffers[b.key()]);
}

CodecValidation validate_codec(CodecModelImpl& model, const std::vector<torch::Tensor>& images,
                               const std::vector<double>& lambdas, bool real_bits) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const size_t rates = lambdas.size();
  const torch::Tensor all = torch::arange(static_cast<int64_t>(rates), torch::kLong);
  const torch::Tensor gains = model.gains(all), prior_gains = model.prior_gain(gains);
  // A "step" prior has tables for each trained rate's step; a "gained" one, one set for all.
  FrozenPrior frozen;
  if (real_bits) frozen = freeze_prior(*model.prior, kCodecTailMass, prior_gains.defined() ? prior_gains.flatten(1) : torch::Tensor());
  else model.prior->update_medians();
  CodecValidation v;
  v.rates.resize(rates);
  for (size_t r = 0; r < rates; ++r) v.rates[r].lambda = lambdas[r], v.rates[r].real_bpp = real_bits ? 0 : kNaN;
  for (const auto& image : images) {
    const int64_t pixels = image.size(1) * image.size(2);
    const torch::Tensor x = image.unsqueeze(0).expand({static_cast<int64_t>(rates), -1, -1, -1});
    const CodecOutput out = model.forward(x, gains, model.inverse_gains(all));
    const torch::Tensor bpp = bits_per_pixel(out.likelihoods, pixels);
    const torch::Tensor decoded = out.x_hat.clamp(0, 1).mul(255).round().div(255);
    const torch::Tensor symbols = real_bits ? model.prior->symbols(out.y_hat, prior_gains).contiguous() : torch::Tensor();
    for (size_t r = 0; r < rates; ++r) {
      const double mse = (decoded[r] - image).pow(2).mean().item<double>();
      v.rates[r].bpp += bpp[r].item<double>();
      v.rates[r].psnr += psnr(decoded[r], image);
      v.rd += lambdas[r] * kPeak2 * mse + bpp[r].item<double>();
      if (real_bits) {
        RansEncoder enc;
        const torch::Tensor s = symbols[r];
        const int32_t* p = s.data_ptr<int32_t>();
        const int64_t plane = s.size(1) * s.size(2);
        for (int64_t c = 0; c < s.size(0); ++c)
          for (int64_t k = 0; k < plane; ++k)
            enc.put(p[c * plane + k], frozen.table(frozen.steps() == 1 ? 0 : r, static_cast<size_t>(c)));
        const double bytes = static_cast<double>(enc.finish().size()) + kContainerBytes;
        v.rates[r].real_bpp += 8 * bytes / static_cast<double>(pixels);
      }
    }
  }
  const double n = static_cast<double>(images.size());
  for (auto& rv : v.rates) {
    rv.bpp /= n, rv.psnr /= n, rv.real_bpp /= n;
    v.mean_psnr += rv.psnr / static_cast<double>(rates);
  }
  v.rd /= n * static_cast<double>(rates);
  if (was_training) model.train();
  return v;
}

namespace {

// Rate-distortion training of the codec (the header says what the loss and validation are).
class CodecObjective final : public TrainingObjective {
 public:
  CodecObjective(const TrainOptions& o, bool resume, const Runtime& runtime, const Logger& log, CodecTrainResult* result)
      : options_(o), spec_(spec_of(o)), rates_(o.lambdas.size()), device_(runtime.device) {
    log.info("loading training images from ", o.data_dir);
    dataset_ = std::make_unique<PatchDataset>(PatchDataset::from_folder(
        o.data_dir, "", spec_.channels, o.patches, log, o.max_pixels,
        &result->skipped_training));
    if (!o.val_dir.empty()) {
      auto set = load_validation_set(o.val_dir, spec_.channels, NoiseSpec{}, kValidationNoiseSeed, log, o.max_pixels,
                                     &result->skipped_validation);
      if (o.val_max_images > 0 && static_cast<int>(set.size()) > o.val_max_images) set.resize(o.val_max_images);
      for (auto& im : set) val_images_.push_back(im.clean);
    }
    torch::manual_seed(o.seed);
    model_ = CodecModel(spec_, o.lambdas);
    if (!resume && !o.init.empty()) {
      init_codec_from_checkpoint(o.init, *model_, o.lambdas);
      log.info("starting from the weights of ", o.init);
    }
    model_->to(runtime.device);
    lambda_table_ = torch::tensor(o.lambdas, torch::kDouble).to(torch::kFloat);
    window_.assign(4 * rates_, 0.0);
  }

  torch::nn::Module& module() override { return *model_; }
  std::string describe() const override {
    return "codec N=" + std::to_string(spec_.n) + " M=" + std::to_string(spec_.m) + " " + spec_.activation + " (" +
           std::to_string(rates_) + " rates, " + fixed(model_->macs_per_pixel() / 1e3, 1) + " kMAC/pixel) on " +
           std::to_string(dataset_->size()) + " images";
  }
  std::string progress_label() const override { return "train codec"; }
  double training_pixels() const override { return static_cast<double>(dataset_->pixel_count()); }
  TrainBatch make_batch(int64_t index) const override {
    return dataset_->batch(options_.seed, index, NoiseSpec{}, data_shard());
  }

  torch::Tensor loss(const TrainBatch& batch, int64_t iteration) override {
    const torch::Tensor x = batch.clean.to(device_);
    const int batch_size = options_.patches.batch;
    const torch::Tensor r = step_rates(iteration, batch_size, batch.shard, rates_);
    const int64_t latent_side = (options_.patches.patch + CodecModelImpl::kStride - 1) / CodecModelImpl::kStride;
    const CodecOutput out = model_->forward(
        x, model_->gains(r), model_->inverse_gains(r),
        shard_generator(options_.seed, iteration, batch.shard, spec_.m * latent_side * latent_side, batch_size));
    const torch::Tensor mse = (out.x_hat - x).pow(2).mean({1, 2, 3});
    const int64_t patch_pixels = static_cast<int64_t>(options_.patches.patch) * options_.patches.patch;
    const torch::Tensor bpp = bits_per_pixel(out.likelihoods, patch_pixels);
    const torch::Tensor per_patch = lambda_table_.index_select(0, r) * kPeak2 * mse + bpp;
    // Per rate: patches, loss, bpp and PSNR sums since the last metrics row.
    const auto pp = per_patch.detach().to(torch::kDouble).contiguous();
    const auto bb = bpp.detach().to(torch::kDouble).contiguous();
    const auto mm = mse.detach().to(torch::kDouble).contiguous();
    for (int b = 0; b < options_.patches.batch; ++b) {
      double* w = &window_[4 * static_cast<size_t>(r[b].item<int64_t>())];
      w[0] += 1, w[1] += pp[b].item<double>(), w[2] += bb[b].item<double>();
      w[3] += 10 * std::log10(1.0 / std::max(mm[b].item<double>(), 1e-12));
    }
    return per_patch.mean();
  }
  // Rare large steps (a patch far outside what the prior has seen) would otherwise throw the
  // prior's CDF networks off; CompressAI's example clips at the same norm.
  void before_update() override { torch::nn::utils::clip_grad_norm_(model_->parameters(), 1.0); }

  std::vector<std::string> step_columns() const override { return step_columns_for(rates_); }
  std::vector<std::string> validation_columns() const override { return validation_columns_for(rates_); }
  std::vector<double> take_step_figures() override {
    double bpp_all = 0, psnr_all = 0, n_all = 0;
    std::vector<double> per_rate;
    for (size_t k = 0; k < rates_; ++k) {
      const double* w = &window_[4 * k];
      bpp_all += w[2], psnr_all += w[3], n_all += w[0];
      for (int f = 1; f <= 3; ++f) per_rate.push_back(w[0] > 0 ? w[f] / w[0] : kNaN);
    }
    std::vector<double> figures = {bpp_all / n_all, psnr_all / n_all};
    figures.insert(figures.end(), per_rate.begin(), per_rate.end());
    std::fill(window_.begin(), window_.end(), 0.0);
    return figures;
  }

  bool can_validate() const override { return !val_images_.empty(); }
  bool lower_is_better() const override { return true; }
  ValidationOutcome validate(const RunDirectory&, int64_t) override {
    last_ = validate_codec(*model_, val_images_, options_.lambdas, true);
    ValidationOutcome out;
    out.figures = {last_.rd, last_.mean_psnr};
    for (const auto& rv : last_.rates) out.figures.insert(out.figures.end(), {rv.bpp, rv.real_bpp, rv.psnr});
    out.figure = last_.rd;
    std::string text;
    for (const auto& rv : last_.rates) text += " " + fixed(rv.real_bpp, 3) + "/" + fixed(rv.psnr, 2);
    out.summary = "RD " + fixed(last_.rd, 4) + ", mean PSNR " + fixed(last_.mean_psnr, 2) +
                  " dB; bpp/PSNR per rate:" + text;
    return out;
  }
  std::string figure_text(double figure) const override { return "RD " + fixed(figure, 4); }
  std::string progress_suffix() const override {
    return last_.rates.empty() ? "" : " | val " + fixed(last_.mean_psnr, 2) + " dB";
  }

  // The checkpoint's window: steps and loss sum (the loop's), then the per-rate sums.
  void save_checkpoint(const std::string& path, const torch::optim::Optimizer* optimizer,
                       const LoopState& state) const override {
    CodecCheckpointInfo info;
    info.spec = spec_;
    info.lambdas = options_.lambdas;
    info.config_json = state.config_json;
    info.iteration = state.iteration;
    info.best_val_rd = state.best;
    info.window = {static_cast<double>(state.loss_count), state.loss_sum};
    info.window.insert(info.window.end(), window_.begin(), window_.end());
    info.project_version = kVersion;
    save_codec_checkpoint(path, *model_, optimizer, info);
  }
  LoopState load_checkpoint(const std::string& path, torch::optim::Optimizer* optimizer) override {
    load_codec_checkpoint_state(path, *model_, optimizer);
    const CodecCheckpointInfo info = read_codec_checkpoint_info(path);
    LoopState state;
    state.iteration = info.iteration;
    state.best = info.best_val_rd;
    state.config_json = info.config_json;
    if (info.window.size() == 2 + window_.size()) {
      state.loss_count = static_cast<int64_t>(info.window[0]);
      state.loss_sum = info.window[1];
      std::copy(info.window.begin() + 2, info.window.end(), window_.begin());
    }
    return state;
  }

  void write_curves(const std::string& path, const MetricsLog& metrics) const override {
    write_codec_curves(path, metrics, rates_);
  }

  const CodecValidation& last() const { return last_; }

 private:
  const TrainOptions options_;
  const CodecSpec spec_;
  const size_t rates_;
  torch::Device device_;
  std::unique_ptr<PatchDataset> dataset_;
  std::vector<torch::Tensor> val_images_;
  CodecModel model_{nullptr};
  torch::Tensor lambda_table_;
  std::vector<double> window_;  // per rate: patches, loss, bpp, PSNR sums since the last row
  CodecValidation last_;
};

}  // namespace

CodecTrainResult train_codec(const TrainOptions& options, const TrainControl& control, const Runtime& runtime,
                             const Logger& log) {
  if (options.task != "compress") throw UsageError("train_codec needs the task \"compress\"");
  CodecTrainResult result;
  std::unique_ptr<TrainingObjective> objective;
  const LoopResult loop = run_training(
      options, control, runtime, log,
      [&](const RunDirectory&) { return std::make_unique<CodecObjective>(options, control.resume, runtime, log, &result); },
      &objective);
  result.last = static_cast<CodecObjective&>(*objective).last();
  result.iteration = loop.iteration;
  result.finished = loop.finished;
  result.best_val_rd = loop.best;
  result.seconds = loop.seconds;
  result.patches_per_second = loop.patches_per_second;
  return result;
}

}  // namespace bottleneck

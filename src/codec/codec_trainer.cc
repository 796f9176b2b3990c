#include "codec/codec_trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "util/atomic_file.h"
#include "bottleneck/version.h"
#include "formats/checkpoint.h"
#include "codec/rans.h"
#include "data/dataset.h"
#include "util/error.h"
#include "image/image_io.h"
#include "image/metrics.h"
#include "data/noise.h"
#include "report/plot.h"
#include "util/progress.h"
#include "util/seeds.h"
#include "util/text_format.h"

namespace fs = std::filesystem;

namespace bottleneck {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kPeak2 = 255.0 * 255.0;
// Bytes of a .bnc file around one stream's payload (docs/formats.md: 52 + 16 k).
constexpr double kContainerBytes = 52 + 16;

double number_or_nan(const nlohmann::json& j) { return j.is_number() ? j.get<double>() : kNaN; }

// The codec's metrics.csv: a small version of trainer.cc's MetricsLog (anonymous there) with
// columns that depend on the number of rates. A later refactor can make one writer for both.
class CodecMetricsLog {
 public:
  CodecMetricsLog(std::string path, std::vector<std::string> columns) : path_(std::move(path)), columns_(std::move(columns)) {}

  // Keeps an earlier invocation's rows up to `iteration` (later ones are redone); a file with
  // other columns is left out (its rows are of another layout).
  void load_until(int64_t iteration) {
    std::ifstream in(path_);
    std::string line;
    if (!std::getline(in, line) || line != header()) return;
    while (std::getline(in, line)) {
      std::vector<double> row;
      std::stringstream ss(line);
      std::string c;
      try {
        while (std::getline(ss, c, ',')) row.push_back(c.empty() ? kNaN : std::stod(c));
      } catch (const std::exception&) {
        continue;  // a damaged line costs one row, not the run
      }
      if (row.empty() || row[0] > static_cast<double>(iteration)) continue;
      row.resize(columns_.size(), kNaN);
      rows_.push_back(std::move(row));
    }
  }

  void add(std::vector<double> row) { rows_.push_back(std::move(row)); }

  void write() const {
    std::ostringstream out;
    out << header() << "\n";
    for (const auto& r : rows_) {
      for (size_t i = 0; i < r.size(); ++i) {
        if (i) out << ",";
        if (std::isfinite(r[i])) out << std::setprecision(i == 0 ? 15 : 8) << r[i];
      }
      out << "\n";
    }
    write_file_atomically(path_, out.str());
  }

  // The values of column `name` against the iteration, finite ones only.
  Series series(const std::string& name, const std::string& label, cv::Scalar color) const {
    Series s;
    s.name = label;
    s.color = color;
    const size_t k = static_cast<size_t>(std::find(columns_.begin(), columns_.end(), name) - columns_.begin());
    for (const auto& r : rows_)
      if (k < r.size() && std::isfinite(r[k])) s.x.push_back(r[0]), s.y.push_back(r[k]);
    return s;
  }

  double last_elapsed() const { return rows_.empty() || !std::isfinite(rows_.back().back()) ? 0 : rows_.back().back(); }

 private:
  std::string header() const {
    std::string h;
    for (size_t i = 0; i < columns_.size(); ++i) h += (i ? "," : "") + columns_[i];
    return h;
  }
  std::string path_;
  std::vector<std::string> columns_;
  std::vector<std::vector<double>> rows_;
};

std::vector<std::string> metrics_columns(size_t rates) {
  std::vector<std::string> c = {"iteration", "lr", "loss", "bpp", "psnr"};
  for (size_t r = 0; r < rates; ++r)
    for (const char* f : {"loss", "bpp", "psnr"}) c.push_back(std::string(f) + "_r" + std::to_string(r));
  c.push_back("val_rd");
  c.push_back("val_psnr");
  for (size_t r = 0; r < rates; ++r)
    for (const char* f : {"val_bpp", "val_real_bpp", "val_psnr"}) c.push_back(std::string(f) + "_r" + std::to_string(r));
  c.push_back("patches_per_s");
  c.push_back("elapsed_s");
  return c;
}

cv::Scalar rate_color(size_t r, size_t n) {
  const double t = n > 1 ? static_cast<double>(r) / static_cast<double>(n - 1) : 0;
  return cv::Scalar(255 * t, 60, 255 * (1 - t));  // BGR: red (low rate) to blue (high rate)
}

void write_codec_curves(const std::string& path, const CodecMetricsLog& m, size_t rates) {
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
    psnr_series.push_back(m.series("val_psnr_r" + std::to_string(r), label, rate_color(r, rates)));
    bpp_series.push_back(m.series("val_bpp_r" + std::to_string(r), label, rate_color(r, rates)));
  }
  cv::Mat chart;
  cv::vconcat(std::vector<cv::Mat>{plot_lines({m.series("loss", "loss", cv::Scalar(0, 0, 0))}, loss_opts),
                                   plot_lines(psnr_series, psnr_opts), plot_lines(bpp_series, bpp_opts)},
              chart);
  save_mat(path, chart);
}

// Noise of step `it`: its own generator, so the draw depends on (seed, step) only.
at::Generator step_generator(uint64_t seed, int64_t it) {
  return at::detail::createCPUGenerator(splitmix64(splitmix64(seed ^ 0x636f646563ULL) + static_cast<uint64_t>(it)));
}

// Rate index of each patch of step `it`: the rates cycle over the run's patches, so every rate
// gets the same share and the assignment is a pure function of the step.
torch::Tensor step_rates(int64_t it, int batch, size_t rates) {
  auto r = torch::empty({batch}, torch::kLong);
  for (int b = 0; b < batch; ++b) r[b] = (it * batch + b) % static_cast<int64_t>(rates);
  return r;
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

void set_learning_rate(torch::optim::Adam& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
}

bool parameters_finite(const CodecModelImpl& model) {
  for (const auto& p : model.parameters())
    if (!torch::isfinite(p).all().item<bool>()) return false;
  return true;
}

CodecSpec spec_of(const TrainOptions& o) {
  CodecSpec s;
  s.channels = o.arch.in_channels;
  s.n = o.codec_n;
  s.m = o.codec_m;
  s.activation = o.codec_activation;
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

CodecValidation validate_codec(CodecModelImpl& model, const std::vector<torch::Tensor>& images,
                               const std::vector<double>& lambdas, bool real_bits) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const size_t rates = lambdas.size();
  FrozenPrior frozen;
  if (real_bits) frozen = freeze_prior(*model.prior);
  else model.prior->update_medians();
  CodecValidation v;
  v.rates.resize(rates);
  for (size_t r = 0; r < rates; ++r) v.rates[r].lambda = lambdas[r], v.rates[r].real_bpp = real_bits ? 0 : kNaN;
  const torch::Tensor all = torch::arange(static_cast<int64_t>(rates), torch::kLong);
  for (const auto& image : images) {
    const int64_t pixels = image.size(1) * image.size(2);
    const torch::Tensor x = image.unsqueeze(0).expand({static_cast<int64_t>(rates), -1, -1, -1});
    const CodecOutput out = model.forward(x, model.gains(all), model.inverse_gains(all));
    const torch::Tensor bpp = bits_per_pixel(out.likelihoods, pixels);
    const torch::Tensor decoded = out.x_hat.clamp(0, 1).mul(255).round().div(255);
    const torch::Tensor symbols = real_bits ? model.prior->symbols(out.y_hat).contiguous() : torch::Tensor();
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
          for (int64_t k = 0; k < plane; ++k) enc.put(p[c * plane + k], frozen.tables[c]);
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

CodecTrainResult train_codec(const TrainOptions& requested, const TrainControl& control, const Runtime& runtime,
                             const Logger& log) {
  validate(requested);
  if (requested.task != "compress") throw UsageError("train_codec needs --task compress");
  TrainOptions options = requested;
  const std::string run_dir = options.out_dir;
  const std::string last_path = run_dir + "/last.ckpt", best_path = run_dir + "/best.ckpt";
  std::error_code ec;
  if (!control.resume && fs::exists(last_path, ec))
    throw UsageError(run_dir + " already holds a run (last.ckpt): continue it with --resume " + run_dir +
                     ", or choose another --out");
  if (control.resume && !fs::exists(last_path, ec)) throw Error(last_path, "nothing to resume: no checkpoint in the run directory");
  fs::create_directories(run_dir, ec);
  if (ec) throw Error(run_dir, "cannot create the run directory: " + ec.message());
  const std::vector<std::string> stale = remove_stale_temporaries(run_dir);
  if (!stale.empty()) log.info("removed ", stale.size(), " temporary file(s) of an interrupted run from ", run_dir);

  const CodecSpec spec = spec_of(options);
  const std::vector<double>& lambdas = options.lambdas;
  const size_t rates = lambdas.size();
  log.info("loading training images from ", options.data_dir);
  CodecTrainResult result;
  const PatchDataset dataset =
      PatchDataset::from_folder(options.data_dir, "", spec.channels, PatchOptions{options.patch, options.batch, options.augment},
                                log, options.max_pixels, &result.skipped_training);
  if (options.epochs > 0) {
    const double patch_pixels = static_cast<double>(options.batch) * options.patch * options.patch;
    options.iterations = std::max<int64_t>(
        1, static_cast<int64_t>(std::ceil(options.epochs * static_cast<double>(dataset.pixel_count()) / patch_pixels)));
  }
  std::vector<torch::Tensor> val_images;
  if (!options.val_dir.empty()) {
    auto set = load_validation_set(options.val_dir, spec.channels, NoiseSpec{}, kValidationNoiseSeed, log,
                                   options.max_pixels, &result.skipped_validation);
    if (options.val_max_images > 0 && static_cast<int>(set.size()) > options.val_max_images) set.resize(options.val_max_images);
    for (auto& im : set) val_images.push_back(im.clean);
  }

  torch::manual_seed(options.seed);
  CodecModel model(spec, lambdas);
  model->to(runtime.device);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(options.lr));

  CodecMetricsLog metrics(run_dir + "/metrics.csv", metrics_columns(rates));
  int64_t iteration = 0;
  double best = kNaN;
  // The window since the last metrics row: steps, loss sum, then per rate count, loss, bpp, PSNR.
  std::vector<double> window(2 + 4 * rates, 0.0);
  if (control.resume) {
    load_codec_checkpoint_state(last_path, *model, &optimizer);
    const CodecCheckpointInfo info = read_codec_checkpoint_info(last_path);
    iteration = info.iteration;
    best = info.best_val_rd;
    if (info.window.size() == window.size()) window = info.window;
    metrics.load_until(iteration);
    log.info("resuming ", run_dir, " at iteration ", iteration, " of ", options.iterations);
  }
  write_file_atomically(run_dir + "/config.json", to_json(options) + "\n");
  log.info("training codec N=", spec.n, " M=", spec.m, " ", spec.activation, " (", rates, " rates, ",
           fixed(model->macs_per_pixel() / 1e3, 1), " kMAC/pixel) on ", dataset.size(), " images, ", runtime.threads,
           " threads");

  auto make_info = [&](int64_t it) {
    CodecCheckpointInfo info;
    info.spec = spec;
    info.lambdas = lambdas;
    info.config_json = to_json(options);
    info.iteration = it;
    info.best_val_rd = best;
    info.window = window;
    info.project_version = kVersion;
    return info;
  };
  auto save_last = [&] {
    if (!parameters_finite(*model))
      throw Error(run_dir, "the weights became non-finite at iteration " + std::to_string(iteration) +
                               "; the last good state is " + last_path);
    save_codec_checkpoint(last_path, *model, &optimizer, make_info(iteration));
  };

  const double elapsed_before = metrics.last_elapsed();
  const auto start = std::chrono::steady_clock::now();
  auto seconds_since_start = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  const NoiseSpec no_noise{};
  BatchLoader loader([&](int64_t index) { return dataset.batch(options.seed, index, no_noise); }, iteration,
                     options.loader_workers, 4);
  ProgressBar::Options progress_options;
  progress_options.label = "train codec";
  progress_options.tty = control.progress_tty;
  progress_options.enabled = log.enabled(LogLevel::kInfo);
  ProgressBar progress(options.iterations, iteration, progress_options, std::cerr);

  const torch::Tensor lambda_table = torch::tensor(lambdas, torch::kDouble).to(torch::kFloat);
  const int64_t patch_pixels = static_cast<int64_t>(options.patch) * options.patch;
  model->train();
  int64_t steps_this_run = 0;
  bool stopped_early = false;
  std::string progress_text;
  while (iteration < options.iterations) {
    if ((control.stop && control.stop->load()) || (control.stop_after > 0 && steps_this_run >= control.stop_after) ||
        (control.time_limit_s > 0 && seconds_since_start() >= control.time_limit_s)) {
      stopped_early = true;
      break;
    }
    const TrainBatch batch = loader.next();
    set_learning_rate(optimizer, learning_rate(options, iteration));
    const torch::Tensor x = batch.clean.to(runtime.device);
    const torch::Tensor r = step_rates(iteration, options.batch, rates);
    const CodecOutput out = model->forward(x, model->gains(r), model->inverse_gains(r), step_generator(options.seed, iteration));
    const torch::Tensor mse = (out.x_hat - x).pow(2).mean({1, 2, 3});
    const torch::Tensor bpp = bits_per_pixel(out.likelihoods, patch_pixels);
    const torch::Tensor per_patch = lambda_table.index_select(0, r) * kPeak2 * mse + bpp;
    const torch::Tensor loss = per_patch.mean();
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value))
      throw Error(run_dir, "training loss became " + std::to_string(loss_value) + " at iteration " +
                               std::to_string(iteration + 1) + "; the last good state is " + last_path);
    optimizer.zero_grad();
    loss.backward();
    // Rare large steps (a patch far outside what the prior has seen) would otherwise throw the
    // prior's CDF networks off; CompressAI's example clips at the same norm.
    torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
    optimizer.step();
    ++iteration;
    ++steps_this_run;
    window[0] += 1;
    window[1] += loss_value;
    {
      const auto pp = per_patch.detach().to(torch::kDouble).contiguous();
      const auto bb = bpp.detach().to(torch::kDouble).contiguous();
      const auto mm = mse.detach().to(torch::kDouble).contiguous();
      for (int b = 0; b < options.batch; ++b) {
        double* w = &window[2 + 4 * static_cast<size_t>(r[b].item<int64_t>())];
        w[0] += 1, w[1] += pp[b].item<double>(), w[2] += bb[b].item<double>();
        w[3] += 10 * std::log10(1.0 / std::max(mm[b].item<double>(), 1e-12));
      }
    }

    const double patches_per_s = progress.rate() * options.batch;
    const bool validate_now = !val_images.empty() && (iteration % options.val_every == 0 || iteration == options.iterations);
    if (iteration % options.log_every == 0 || validate_now || iteration == options.iterations) {
      std::vector<double> row = {static_cast<double>(iteration), learning_rate(options, iteration - 1), window[1] / window[0]};
      double bpp_all = 0, psnr_all = 0, n_all = 0;
      std::vector<double> per_rate;
      for (size_t k = 0; k < rates; ++k) {
        const double* w = &window[2 + 4 * k];
        bpp_all += w[2], psnr_all += w[3], n_all += w[0];
        for (int f = 1; f <= 3; ++f) per_rate.push_back(w[0] > 0 ? w[f] / w[0] : kNaN);
      }
      row.push_back(bpp_all / n_all);
      row.push_back(psnr_all / n_all);
      row.insert(row.end(), per_rate.begin(), per_rate.end());
      std::fill(window.begin(), window.end(), 0.0);
      if (validate_now) {
        result.last = validate_codec(*model, val_images, lambdas, true);
        const CodecValidation& v = result.last;
        row.push_back(v.rd);
        row.push_back(v.mean_psnr);
        for (const auto& rv : v.rates) row.insert(row.end(), {rv.bpp, rv.real_bpp, rv.psnr});
        if (!(v.rd >= best) && std::isfinite(v.rd)) {
          best = v.rd;
          save_codec_checkpoint(best_path, *model, nullptr, make_info(iteration));
        }
        std::string text;
        for (const auto& rv : v.rates) text += " " + fixed(rv.real_bpp, 3) + "/" + fixed(rv.psnr, 2);
        log.info("validation at ", iteration, ": RD ", fixed(v.rd, 4), " (best ", fixed(best, 4), "), mean PSNR ",
                 fixed(v.mean_psnr, 2), " dB; bpp/PSNR per rate:", text);
      } else {
        row.resize(row.size() + 2 + 3 * rates, kNaN);
      }
      row.push_back(patches_per_s);
      row.push_back(elapsed_before + seconds_since_start());
      metrics.add(row);
      metrics.write();
      if (validate_now) write_codec_curves(run_dir + "/curves.png", metrics, rates);
    }
    if (iteration % options.checkpoint_every == 0 || iteration == options.iterations) save_last();
    progress_text = "loss " + fixed(loss_value, 4) + " | " + fixed(patches_per_s, 1) + " img/s";
    if (!result.last.rates.empty()) progress_text += " | val " + fixed(result.last.mean_psnr, 2) + " dB";
    progress.update(iteration, progress_text);
  }
  save_last();
  if (val_images.empty() && !fs::exists(best_path, ec)) save_codec_checkpoint(best_path, *model, nullptr, make_info(iteration));
  const double seconds = seconds_since_start();
  progress.finish(progress_text + (stopped_early ? " | stopped" : " | done"));
  result.iteration = iteration;
  result.finished = iteration >= options.iterations;
  result.best_val_rd = best;
  result.seconds = seconds;
  result.patches_per_second = seconds > 0 ? static_cast<double>(steps_this_run * options.batch) / seconds : 0;
  return result;
}

}  // namespace bottleneck

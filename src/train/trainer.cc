#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <sstream>

#include <torch/torch.h>

#include "util/atomic_file.h"
#include "formats/checkpoint.h"
#include "report/comparison.h"
#include "data/dataset.h"
#include "util/error.h"
#include "image/image_io.h"
#include "train/layout_probe.h"
#include "image/metrics.h"
#include "formats/model_file.h"
#include "nets/models.h"
#include "data/noise.h"
#include "report/plot.h"
#include "util/progress.h"
#include "bottleneck/version.h"
#include "util/text_format.h"

namespace fs = std::filesystem;

namespace bottleneck {

double learning_rate(const TrainOptions& o, int64_t it) {
  if (o.schedule == "cosine") {
    const double t = static_cast<double>(it) / static_cast<double>(o.iterations);
    return o.lr_min + 0.5 * (o.lr - o.lr_min) * (1.0 + std::cos(M_PI * t));
  }
  if (o.schedule == "step") return o.lr * std::pow(o.step_gamma, static_cast<double>(it / o.step_size));
  return o.lr;
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// metrics.csv: one row per logged step; validation columns are empty on rows without one.
struct MetricsRow {
  int64_t iteration = 0;
  double lr = kNaN, loss = kNaN;
  double val_psnr_noisy = kNaN, val_ssim_noisy = kNaN, val_psnr = kNaN, val_ssim = kNaN;
  double patches_per_s = kNaN, elapsed_s = kNaN;
};

const char* kMetricsHeader = "iteration,lr,loss,val_psnr_noisy,val_ssim_noisy,val_psnr,val_ssim,patches_per_s,elapsed_s";


double parse_cell(const std::string& s) { return s.empty() ? kNaN : std::stod(s); }

class MetricsLog {
 public:
  explicit MetricsLog(std::string path) : path_(std::move(path)) {}

  // Keeps the rows up to `iteration` of an earlier invocation: rows past the checkpoint being
  // resumed belong to steps that will be redone.
  void load_until(int64_t iteration) {
    std::ifstream in(path_);
    std::string line;
    if (!std::getline(in, line)) return;
    while (std::getline(in, line)) {
      std::vector<std::string> cells;
      std::stringstream ss(line);
      std::string c;
      while (std::getline(ss, c, ',')) cells.push_back(c);
      cells.resize(9);
      try {
        MetricsRow r;
        r.iteration = std::stoll(cells[0]);
        if (r.iteration > iteration) continue;
        r.lr = parse_cell(cells[1]);
        r.loss = parse_cell(cells[2]);
        r.val_psnr_noisy = parse_cell(cells[3]);
        r.val_ssim_noisy = parse_cell(cells[4]);
        r.val_psnr = parse_cell(cells[5]);
        r.val_ssim = parse_cell(cells[6]);
        r.patches_per_s = parse_cell(cells[7]);
        r.elapsed_s = parse_cell(cells[8]);
        rows_.push_back(r);
      } catch (const std::exception&) {
        // A damaged line (e.g. a crash mid-write by an old version) costs one row, not the run.
      }
    }
  }

  void add(const MetricsRow& row) { rows_.push_back(row); }

  void write() const {
    std::ostringstream out;
    out << kMetricsHeader << "\n";
    for (const auto& r : rows_)
      out << r.iteration << "," << csv_cell(r.lr) << "," << csv_cell(r.loss) << "," << csv_cell(r.val_psnr_noisy) << ","
          << csv_cell(r.val_ssim_noisy) << "," << csv_cell(r.val_psnr) << "," << csv_cell(r.val_ssim) << ","
          << csv_cell(r.patches_per_s) << "," << csv_cell(r.elapsed_s) << "\n";
    write_file_atomically(path_, out.str());
  }

  void write_curves(const std::string& path) const {
    std::vector<double> li, l, vi, vp, vn;
    for (const auto& r : rows_) {
      if (std::isfinite(r.loss)) li.push_back(static_cast<double>(r.iteration)), l.push_back(r.loss);
      if (std::isfinite(r.val_psnr)) {
        vi.push_back(static_cast<double>(r.iteration));
        vp.push_back(r.val_psnr);
        vn.push_back(r.val_psnr_noisy);
      }
    }
    write_training_curves(path, li, l, vi, vp, vn);
  }

  double best_val_psnr() const {
    double best = kNaN;
    for (const auto& r : rows_)
      if (std::isfinite(r.val_psnr) && !(r.val_psnr <= best)) best = r.val_psnr;
    return best;
  }

  double last_val_psnr_noisy() const {
    for (auto r = rows_.rbegin(); r != rows_.rend(); ++r)
      if (std::isfinite(r->val_psnr_noisy)) return r->val_psnr_noisy;
    return kNaN;
  }

  double elapsed_s() const { return rows_.empty() || !std::isfinite(rows_.back().elapsed_s) ? 0 : rows_.back().elapsed_s; }

 private:
  std::string path_;
  std::vector<MetricsRow> rows_;
};

struct Validation {
  double psnr = kNaN, ssim = kNaN, psnr_noisy = kNaN, ssim_noisy = kNaN;
};

class Validator {
 public:
  Validator(std::vector<ValidationImage> images, torch::Device device, int samples, std::string samples_dir)
      : images_(std::move(images)), device_(device), samples_(samples), samples_dir_(std::move(samples_dir)) {
    for (const auto& im : images_) {
      auto noisy = im.noisy.clamp(0, 1);
      noisy_psnr_.push_back(psnr(noisy, im.clean));
      noisy_ssim_.push_back(ssim(noisy, im.clean));
    }
  }

  bool empty() const { return images_.empty(); }

  Validation run(AutoencoderImpl& model) const {
    torch::NoGradGuard no_grad;
    const bool was_training = model.is_training();
    model.eval();
    Validation v{0, 0, 0, 0};
    for (size_t i = 0; i < images_.size(); ++i) {
      const auto& im = images_[i];
      auto out = model.forward(im.noisy.unsqueeze(0).to(device_)).squeeze(0).clamp(0, 1).to(torch::kCPU);
      const double p = psnr(out, im.clean), s = ssim(out, im.clean);
      v.psnr += p;
      v.ssim += s;
      v.psnr_noisy += noisy_psnr_[i];
      v.ssim_noisy += noisy_ssim_[i];
      if (static_cast<int>(i) < samples_) {
        const cv::Mat strip = make_comparison({{im.clean, "clean", ""},
                                               {im.noisy.clamp(0, 1), "noisy", quality_caption(noisy_psnr_[i], noisy_ssim_[i])},
                                               {out, "denoised", quality_caption(p, s)}});
        fs::path name = fs::path(im.name).replace_extension(".png");
        std::string flat = name.string();
        std::replace(flat.begin(), flat.end(), '/', '_');
        save_mat(samples_dir_ + "/" + flat, strip);
      }
    }
    const double n = static_cast<double>(images_.size());
    v.psnr /= n, v.ssim /= n, v.psnr_noisy /= n, v.ssim_noisy /= n;
    if (was_training) model.train();
    return v;
  }

 private:
  std::vector<ValidationImage> images_;
  torch::Device device_;
  int samples_;
  std::string samples_dir_;
  std::vector<double> noisy_psnr_, noisy_ssim_;
};

bool parameters_finite(const AutoencoderImpl& model) {
  for (const auto& p : model.parameters())
    if (!torch::isfinite(p).all().item<bool>()) return false;
  return true;
}

void set_learning_rate(torch::optim::Adam& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
}

// The run writes PNGs (samples/, curves.png): inside a data folder they would be read as
// training or validation images by this run's resume or the next run on the folder.
void refuse_run_dir_inside_inputs(const TrainOptions& o) {
  auto resolved = [](const std::string& p) {
    fs::path r = fs::weakly_canonical(p);
    return r.filename().empty() ? r.parent_path() : r;  // "dir/" -> "dir"
  };
  const fs::path run = resolved(o.out_dir);
  const std::pair<const char*, std::string> inputs[] = {
      {"--data", o.data_dir}, {"--pairs", o.pairs_dir}, {"--val", o.val_dir}, {"--val-pairs", o.val_pairs_dir}};
  for (const auto& [flag, dir] : inputs) {
    if (dir.empty()) continue;
    const fs::path input = resolved(dir);
    auto r = run.begin();
    auto i = input.begin();
    while (i != input.end() && r != run.end() && *i == *r) ++i, ++r;
    if (i == input.end())
      throw UsageError("the run directory " + o.out_dir + " lies inside the " + flag + " folder " + dir +
                       ": its samples would be read as images; choose an --out outside it");
  }
}

}  // namespace

TrainResult train(const TrainOptions& requested, const TrainControl& control, const Runtime& runtime,
                  const Logger& log) {
  validate(requested);
  TrainOptions options = requested;  // with iterations resolved from epochs once data is loaded
  const std::string run_dir = options.out_dir;
  const std::string last_path = run_dir + "/last.ckpt";
  const std::string best_path = run_dir + "/best.ckpt";
  std::error_code ec;
  if (!control.resume && fs::exists(last_path, ec))
    throw UsageError(run_dir + " already holds a run (last.ckpt): continue it with --resume " + run_dir +
                     ", or choose another --out");
  if (control.resume && !fs::exists(last_path, ec))
    throw Error(last_path, "nothing to resume: no checkpoint in the run directory");
  refuse_run_dir_inside_inputs(options);
  fs::create_directories(run_dir + "/samples", ec);
  if (ec) throw Error(run_dir, "cannot create the run directory: " + ec.message());
  // A run killed while writing a checkpoint, sample or curve left its temporary behind.
  const std::vector<std::string> stale = remove_stale_temporaries(run_dir);
  if (!stale.empty()) log.info("removed ", stale.size(), " temporary file(s) of an interrupted run from ", run_dir);

  const int channels = options.arch.in_channels;
  const NoiseSpec noise = options.pairs_dir.empty() ? parse_noise(options.noise) : NoiseSpec{};
  const NoiseSpec val_noise = parse_noise(options.val_noise.empty() ? options.noise : options.val_noise);

  log.info("loading training images from ", options.data_dir,
           options.pairs_dir.empty() ? "" : " (noisy partners from " + options.pairs_dir + ")");
  std::vector<std::string> skipped_training, skipped_validation;
  const PatchDataset dataset = PatchDataset::from_folder(
      options.data_dir, options.pairs_dir, channels, PatchOptions{options.patch, options.batch, options.augment}, log,
      options.max_pixels, &skipped_training);
  if (options.epochs > 0) {
    const double patch_pixels = static_cast<double>(options.batch) * options.patch * options.patch;
    options.iterations = std::max<int64_t>(
        1, static_cast<int64_t>(std::ceil(options.epochs * static_cast<double>(dataset.pixel_count()) / patch_pixels)));
    log.info(options.epochs, " epochs = ", options.iterations, " iterations");
  }
  std::vector<ValidationImage> val_images;
  if (!options.val_dir.empty()) {
    val_images = options.val_pairs_dir.empty()
                     ? load_validation_set(options.val_dir, channels, val_noise, kValidationNoiseSeed, log,
                                           options.max_pixels, &skipped_validation)
                     : load_validation_pairs(options.val_dir, options.val_pairs_dir, channels, log,
                                             options.max_pixels, &skipped_validation);
    if (options.val_max_images > 0 && static_cast<int>(val_images.size()) > options.val_max_images)
      val_images.resize(options.val_max_images);
  }
  const Validator validator(std::move(val_images), runtime.device, options.samples, run_dir + "/samples");

  // Before the run seeds torch: the probe's own networks draw from the global generator.
  const c10::ScalarType dtype = options.precision == "bf16" ? torch::kBFloat16 : torch::kFloat;
  const TrainingLayout layout = choose_training_layout(control.layout, runtime.device.is_cpu(), options.arch, dtype,
                                                       options.batch, options.patch, runtime.threads,
                                                       run_dir + "/layout.json");
  if (layout.nchw_patches_per_s > 0)
    log.info("layout: ", layout.channels_last ? "channels-last" : "NCHW", " (", layout.how, ": NCHW ",
             fixed(layout.nchw_patches_per_s, 1), ", channels-last ", fixed(layout.channels_last_patches_per_s, 1),
             " patches/s)");
  const bool channels_last = layout.channels_last;

  torch::manual_seed(options.seed);
  Autoencoder model = make_model(options.arch);
  if (!control.resume && !options.init.empty()) {
    copy_weights(options.init, options.arch, *model);
    log.info("starting from the weights of ", options.init);
  }
  model->to(runtime.device);
  model->set_compute_dtype(dtype);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(options.lr));

  MetricsLog metrics(run_dir + "/metrics.csv");
  int64_t iteration = 0;
  double loss_sum = 0;  // training losses since the last metrics row
  int64_t loss_count = 0;
  double best = kNaN, last_val = kNaN, last_val_noisy = kNaN;
  if (control.resume) {
    load_checkpoint_state(last_path, *model, &optimizer);
    const CheckpointInfo info = read_checkpoint_info(last_path);
    iteration = info.iteration;
    best = info.best_val_psnr;
    last_val = info.last_val_psnr;
    loss_sum = info.loss_window_sum;
    loss_count = info.loss_window_count;
    metrics.load_until(iteration);
    last_val_noisy = metrics.last_val_psnr_noisy();
    log.info("resuming ", run_dir, " at iteration ", iteration, " of ", options.iterations);
  }
  // After loading: Module::load replaces the tensors with the stored ones (any layout).
  if (channels_last) use_channels_last(*model);
  write_file_atomically(run_dir + "/config.json", to_json(options) + "\n");
  log.info("training ", options.arch.kind, " (", parameter_count(*model), " parameters, ",
           fixed(2 * model->macs_per_pixel() / 1e3, 1), " kFLOP/pixel) on ", dataset.size(), " images, ",
           runtime.device.str(), ", ", runtime.threads, " threads");

  auto make_info = [&](int64_t it) {
    CheckpointInfo info;
    info.loss_window_sum = loss_sum;
    info.loss_window_count = loss_count;
    info.arch = options.arch;
    info.config_json = to_json(options);
    info.noise = options.pairs_dir.empty() ? to_string(noise) : "pairs:" + options.pairs_dir;
    info.iteration = it;
    info.best_val_psnr = best;
    info.last_val_psnr = last_val;
    info.project_version = kVersion;
    return info;
  };

  const double elapsed_before = metrics.elapsed_s();
  const auto start = std::chrono::steady_clock::now();
  auto seconds_since_start = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  // Patches and noise come from (seed, step): a resumed run draws exactly the batches the
  // uninterrupted run would have drawn at the same steps.
  BatchLoader loader([&](int64_t index) { return dataset.batch(options.seed, index, noise); }, iteration,
                     options.loader_workers, 4);

  ProgressBar::Options progress_options;
  progress_options.label = "train";
  progress_options.tty = control.progress_tty;
  progress_options.enabled = log.enabled(LogLevel::kInfo);
  ProgressBar progress(options.iterations, iteration, progress_options, std::cerr);

  // A step can turn the weights non-finite while its own loss was still finite: check before
  // every write so a checkpoint on disk is always a good one.
  auto save_last = [&] {
    if (!parameters_finite(*model))
      throw Error(run_dir, "the weights became non-finite at iteration " + std::to_string(iteration) +
                               " (learning rate too high?); the last good state is " + last_path);
    save_checkpoint(last_path, *model, &optimizer, make_info(iteration));
  };

  model->train();
  int64_t steps_this_run = 0;
  bool stopped_early = false;
  std::string progress_text;
  while (iteration < options.iterations) {
    if ((control.stop && control.stop->load()) ||
        (control.stop_after > 0 && steps_this_run >= control.stop_after) ||
        (control.time_limit_s > 0 && seconds_since_start() >= control.time_limit_s)) {
      stopped_early = true;
      break;
    }
    TrainBatch batch = loader.next();
    set_learning_rate(optimizer, learning_rate(options, iteration));
    auto clean = batch.clean.to(runtime.device);
    auto noisy = batch.noisy.to(runtime.device);
    if (channels_last) {
      clean = to_channels_last(clean);
      noisy = to_channels_last(noisy);
    }
    // One step = forward, loss, backward, update. Data-parallel training would all-reduce the
    // gradients between backward() and step(); nothing else in the loop needs to change.
    auto output = model->forward(noisy);
    auto loss = options.loss == "l1" ? torch::l1_loss(output, clean) : torch::mse_loss(output, clean);
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value))
      throw Error(run_dir, "training loss became " + std::to_string(loss_value) + " at iteration " +
                               std::to_string(iteration + 1) + " (learning rate too high?); the last good state is " +
                               last_path);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    ++iteration;
    ++steps_this_run;
    loss_sum += loss_value;
    ++loss_count;

    const double patches_per_s = progress.rate() * options.batch;
    const bool validate_now = !validator.empty() && (iteration % options.val_every == 0 || iteration == options.iterations);
    if (iteration % options.log_every == 0 || validate_now || iteration == options.iterations) {
      MetricsRow row;
      row.iteration = iteration;
      row.lr = learning_rate(options, iteration - 1);
      row.loss = loss_sum / static_cast<double>(loss_count);
      row.patches_per_s = patches_per_s;
      row.elapsed_s = elapsed_before + seconds_since_start();
      loss_sum = 0;
      loss_count = 0;
      if (validate_now) {
        const Validation v = validator.run(*model);
        row.val_psnr = v.psnr, row.val_ssim = v.ssim, row.val_psnr_noisy = v.psnr_noisy, row.val_ssim_noisy = v.ssim_noisy;
        last_val = v.psnr;
        last_val_noisy = v.psnr_noisy;
        if (!(v.psnr <= best) && std::isfinite(v.psnr)) {
          best = v.psnr;
          save_checkpoint(best_path, *model, nullptr, make_info(iteration));
        }
        if (!progress_options.tty || !progress_options.enabled)
          log.info("validation at ", iteration, ": PSNR ", fixed(v.psnr, 2), " dB (noisy ",
                   fixed(v.psnr_noisy, 2), "), SSIM ", fixed(v.ssim, 4), ", best ", fixed(best, 2));
      }
      metrics.add(row);
      metrics.write();
      if (validate_now) metrics.write_curves(run_dir + "/curves.png");
    }
    if (iteration % options.checkpoint_every == 0 || iteration == options.iterations) save_last();

    progress_text = "loss " + fixed(loss_value, 5) + " | " + fixed(patches_per_s, 1) + " img/s";
    if (std::isfinite(last_val)) progress_text += " | val " + fixed(last_val, 2) + " dB";
    progress.update(iteration, progress_text);
  }
  // Always leave `last` at the step we stopped on, whatever the reason.
  save_last();
  if (validator.empty() && !fs::exists(best_path, ec)) save_checkpoint(best_path, *model, nullptr, make_info(iteration));
  const double seconds = seconds_since_start();
  progress.finish(progress_text + (stopped_early ? " | stopped" : " | done"));

  TrainResult result;
  result.iteration = iteration;
  result.finished = iteration >= options.iterations;
  result.best_val_psnr = best;
  result.last_val_psnr = last_val;
  result.last_val_psnr_noisy = last_val_noisy;
  result.seconds = seconds;
  result.skipped_training = std::move(skipped_training);
  result.skipped_validation = std::move(skipped_validation);
  result.patches_per_second = seconds > 0 ? static_cast<double>(steps_this_run * options.batch) / seconds : 0;
  return result;
}

}  // namespace bottleneck

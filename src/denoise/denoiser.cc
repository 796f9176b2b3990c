#include "denoise/denoiser.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "denoise/denoise_plan.h"
#include "util/atomic_file.h"
#include "report/comparison.h"
#include "util/error.h"
#include "util/file_jobs.h"
#include "image/image_io.h"
#include "util/seeds.h"
#include "image/metrics.h"
#include "formats/model_file.h"
#include "data/noise.h"
#include "util/progress.h"
#include "inference/shipped_models.h"
#include "util/text_format.h"

namespace bottleneck {
namespace fs = std::filesystem;

namespace {


// A queue between pipeline stages: push blocks while full, pop while empty; close() wakes both
// sides (push then fails, pop drains what is left and then returns nothing).
template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}
  bool push(T item) {
    std::unique_lock<std::mutex> lock(mutex_);
    not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }
  std::optional<T> pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  size_t capacity_;
  std::deque<T> items_;
  bool closed_ = false;
  std::mutex mutex_;
  std::condition_variable not_empty_, not_full_;
};


struct Item {
  const DenoiseJob* job = nullptr;
  enum class State { kLoaded, kSkipped, kFailed } state = State::kFailed;
  std::string error;         // "FILE: reason" when failed
  // Without added noise the image stays as decoded and is denoised a window at a time into
  // samples of the same depth: a large photo never exists whole as float.
  ImageSamples samples;
  cv::Mat denoised_samples;
  // With added noise (synthetic evaluation) the noisy input is float and unclipped.
  ImageData image;           // the clean image
  torch::Tensor input;       // the noisy pixels (not clipped)
  torch::Tensor denoised;    // clipped to [0,1]
  // A gray photo stored as RGB (three equal planes) is denoised as gray, by the gray model, and
  // written back as three planes: the colour model barely denoises it (20.2 -> 20.4 dB where the
  // gray one reaches 36.9, issue 19).
  bool gray_as_colour = false;

  bool as_samples() const { return !samples.color.empty(); }
  int64_t rows() const { return as_samples() ? samples.color.rows : image.pixels.size(1); }
  int64_t cols() const { return as_samples() ? samples.color.cols : image.pixels.size(2); }
  int channels() const { return as_samples() ? samples.color.channels() : static_cast<int>(image.pixels.size(0)); }
};

// The model each image goes through: the one given, or the shipped denoiser (of the family
// named, or the default) for the image's channels, loaded on first use (a folder of gray photos never loads the colour model).
class ModelChooser {
 public:
  ModelChooser(const std::string& path, c10::Device device, LoadOptions options, const Logger& log)
      : device_(device), options_(options), log_(log), family_(shipped_family_of(path)) {
    if (!path.empty() && family_.empty()) given_ = load(path);
  }
  // 0 for the given model, else 1 (gray) or 3 (colour): images with equal keys share a model.
  int key(int image_channels) const { return given_ ? 0 : image_channels == 1 ? 1 : 3; }
  InferenceModel& get(int key) {
    if (given_) return *given_;
    std::unique_ptr<InferenceModel>& slot = key == 1 ? gray_ : colour_;
    if (!slot) slot = load(shipped_model(key, family_));
    return *slot;
  }

 private:
  std::unique_ptr<InferenceModel> load(const std::string& path) {
    std::unique_ptr<InferenceModel> model = load_model(path, device_, options_);
    log_.debug("model ", path, ": ", model->channels(), " channel(s), receptive radius ",
               model->receptive_radius(), ", size multiple ", model->info().arch.size_multiple());
    return model;
  }
  c10::Device device_;
  LoadOptions options_;
  const Logger& log_;
  std::string family_;  // shipped family ("" = the default per channels) when no file is given
  std::unique_ptr<InferenceModel> given_, gray_, colour_;
};

void validate(const DenoiseOptions& o) {
  if (o.input.empty()) throw UsageError("an input file or folder is required (--input)");
  if (o.output.empty()) throw UsageError("an output folder is required (--output)");
  if (o.tiling.tile < 0) throw UsageError("--tile must be >= 0 (0 = whole images)");
  if (o.tiling.batch < 1) throw UsageError("--batch must be >= 1");
  if (!(o.tiling.strength >= 0 && o.tiling.strength <= 2))
    throw UsageError("--strength must be in [0, 2] (1 = the model's estimate, 0 = unchanged)");
  if (o.prefetch < 1) throw UsageError("prefetch must be >= 1");
  if (o.max_pixels < 1) throw UsageError("--max-pixels must be >= 1");
  if (!o.format.empty() && (o.format.find_first_of("/\\.") != std::string::npos || !has_image_extension("x." + o.format)))
    throw UsageError("--format '" + o.format + "' must be an image file extension: png, jpg, bmp, tif, webp, pgm or ppm");
  if (o.suffix.find_first_of("/\\") != std::string::npos || (!o.suffix.empty() && o.suffix[0] == '.'))
    throw UsageError("--suffix '" + o.suffix + "' must be a plain word such as 'dn' (no '/', no leading '.')");
}

// Writes the outputs of one item (throws on failure) and, when the clean image is known, its
// quality numbers.
void write_outputs(const Item& item, const DenoiseOptions& o, const std::string& output_root, const std::string& noise_text,
                   double* psnr_noisy, double* ssim_noisy, double* psnr_out, double* ssim_out) {
  const DenoiseJob& job = *item.job;
  make_output_folder(job.output, output_root);
  // The plan refused files that existed before the job; one that appears since is not ours either.
  const IfExists if_exists = o.overwrite || o.skip_existing ? IfExists::kReplace : IfExists::kRefuse;
  if (item.as_samples()) {
    cv::Mat denoised = item.denoised_samples;
    if (item.gray_as_colour) cv::merge(std::vector<cv::Mat>{denoised, denoised, denoised}, denoised);
    save_samples(job.output, {denoised, item.samples.alpha, item.samples.metadata}, if_exists);
    if (job.compare.empty()) return;
    save_mat(job.compare, make_comparison({{mat_to_tensor(item.samples.color), "input", ""},
                                           {mat_to_tensor(item.denoised_samples), "denoised", ""}}), if_exists);
    return;
  }
  ImageData out;
  out.pixels = item.gray_as_colour ? to_channels(item.denoised, 3) : item.denoised;
  out.alpha = item.image.alpha;
  out.depth = item.image.depth;
  out.metadata = item.image.metadata;
  save_image(job.output, out, if_exists);

  const torch::Tensor shown_input = item.input.clamp(0, 1);
  const torch::Tensor& clean = item.image.pixels;
  *psnr_noisy = psnr(shown_input, clean);
  *ssim_noisy = ssim(shown_input, clean);
  *psnr_out = psnr(item.denoised, clean);
  *ssim_out = ssim(item.denoised, clean);
  if (job.compare.empty()) return;
  std::vector<Panel> panels;
  panels.push_back({clean, "clean", ""});
  panels.push_back({shown_input, "noisy (" + noise_text + ")", quality_caption(*psnr_noisy, *ssim_noisy)});
  panels.push_back({item.denoised, "denoised", quality_caption(*psnr_out, *ssim_out)});
  save_mat(job.compare, make_comparison(panels), if_exists);
}

}  // namespace

uint64_t file_noise_seed(uint64_t seed, const std::string& relative_path) {
  uint64_t h = 0xCBF29CE484222325ULL;  // FNV-1a over the path bytes
  for (unsigned char c : relative_path) h = (h ^ c) * 0x100000001B3ULL;
  return splitmix64(splitmix64(seed) ^ h);
}

std::string summary_line(const DenoiseReport& r) {
  return "denoised " + std::to_string(r.denoised) + ", skipped " + std::to_string(r.skipped) + ", failed " +
         std::to_string(r.failed) + " (" + fixed(r.megapixels, 1) + " MP in " + fixed(r.seconds, 1) + " s)";
}

DenoiseReport denoise(const DenoiseOptions& options, const Logger& log) {
  validate(options);
  const std::optional<NoiseSpec> noise =
      options.add_noise.empty() ? std::nullopt : std::optional<NoiseSpec>(parse_noise(options.add_noise));
  const std::string noise_text = noise ? to_string(*noise) : "";
  const DenoisePlan plan = plan_denoise(options);
  const std::vector<DenoiseJob>& jobs = plan.jobs;
  ModelChooser models(options.model, options.tiling.device, load_options(options.precision), log);

  // A run killed while writing left temporaries beside its outputs (complete outputs were
  // renamed into place; --skip-existing redoes the rest): they would otherwise stay forever.
  // (Not beside a named output file: that folder is the user's, not the job's.)
  const std::vector<std::string> stale =
      plan.output_root.empty() ? std::vector<std::string>() : remove_stale_temporaries(plan.output_root);
  if (!stale.empty()) log.info("removed ", stale.size(), " temporary file(s) of an interrupted run from ", options.output);
  if (!plan.temporaries.empty())
    log.info("left out ", plan.temporaries.size(), " temporary file(s) of interrupted writes found among the inputs (",
             plan.temporaries.front(), plan.temporaries.size() > 1 ? ", ..." : "",
             "): .NAME.tmp-PID-N.EXT files are never inputs");

  DenoiseReport report;
  // A folder that could not be listed is a failure like an unreadable file: its images are
  // missing from the outputs, so the exit code must say so.
  for (const Error& e : plan.unlisted) {
    ++report.failed;
    report.failures.push_back(e.what());
    log.warn(e.what());
  }
  const auto start = std::chrono::steady_clock::now();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  double sums[4] = {0, 0, 0, 0};

  BoundedQueue<Item> decoded(static_cast<size_t>(options.prefetch));
  BoundedQueue<Item> finished(static_cast<size_t>(options.prefetch));

  std::thread reader([&] {
    for (const DenoiseJob& job : jobs) {
      Item item;
      item.job = &job;
      std::error_code ec;
      if (options.skip_existing && fs::exists(job.output, ec) && (job.compare.empty() || fs::exists(job.compare, ec))) {
        item.state = Item::State::kSkipped;
      } else {
        try {
          if (noise)
            item.image = load_image(job.path, options.max_pixels, ReadMetadata::kYes);
          else
            item.samples = load_samples(job.path, options.max_pixels, ReadMetadata::kYes);
          item.state = Item::State::kLoaded;
          const torch::Tensor& px = item.image.pixels;
          if (noise ? px.size(0) == 3 && torch::equal(px[0], px[1]) && torch::equal(px[1], px[2])
                    : has_equal_planes(item.samples.color)) {
            item.gray_as_colour = true;
            if (noise)
              item.image.pixels = item.image.pixels.narrow(0, 0, 1).contiguous();
            else {
              cv::Mat plane;
              cv::extractChannel(item.samples.color, plane, 0);
              item.samples.color = plane;
            }
            log.info(job.path, ": its three colour channels are equal: denoised as gray, written as read");
          }
          const ImageMetadata& metadata = noise ? item.image.metadata : item.samples.metadata;
          const std::string note = metadata_note(job.output, metadata);
          if (!metadata.problem.empty())
            log.warn(job.path, ": ", note);
          else if (!note.empty())
            log.info(job.path, ": ", note);
          // Refused here, before the model's time is spent on it; the writer would refuse it too.
          const std::string loss = alpha_loss(job.output, noise ? item.image.alpha : item.samples.alpha);
          if (!loss.empty()) {
            item = Item();
            item.job = &job;
            item.error = job.path + ": " + loss + " (--format png keeps it)";
          }
        } catch (const std::exception& e) {
          item.error = e.what();
        }
      }
      if (!decoded.push(std::move(item))) return;
    }
    decoded.close();
  });

  ProgressBar::Options bar_options;
  bar_options.label = "denoise";
  bar_options.unit = "files";
  bar_options.tty = options.progress_tty;
  bar_options.enabled = log.enabled(LogLevel::kInfo);
  ProgressBar bar(static_cast<int64_t>(jobs.size()), 0, bar_options, std::cerr);

  std::thread writer([&] {
    int64_t done = 0;
    while (std::optional<Item> item = finished.pop()) {
      if (item->state == Item::State::kLoaded) {
        try {
          double q[4] = {nan, nan, nan, nan};
          write_outputs(*item, options, plan.output_root, noise_text, &q[0], &q[1], &q[2], &q[3]);
          ++report.denoised;
          report.megapixels += static_cast<double>(item->rows() * item->cols()) / 1e6;
          for (int k = 0; k < 4; ++k) sums[k] += q[k];
        } catch (const std::exception& e) {
          item->state = Item::State::kFailed;
          item->error = e.what();
        }
      } else if (item->state == Item::State::kSkipped) {
        ++report.skipped;
      }
      if (item->state == Item::State::kFailed) {
        ++report.failed;
        report.failures.push_back(item->error);
        log.warn(item->error);
      }
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      // The last file is reported by finish().
      if (++done < static_cast<int64_t>(jobs.size()))
        bar.update(done, fixed(report.megapixels / std::max(elapsed, 1e-9), 2) + " MP/s");
    }
  });

  // The model stage. Small images (one tile each) are gathered into groups of up to `batch`
  // so equal sizes share forward passes.
  auto is_small = [&](const Item& it) {
    const int tile = options.tiling.tile;
    return tile == 0 || (it.rows() <= tile && it.cols() <= tile);
  };
  auto run_group = [&](std::vector<Item>& group) {
    if (group.empty()) return;
    // Outside the per-group try: a shipped model that cannot be loaded stops the job.
    InferenceModel& model = models.get(models.key(group.front().channels()));
    try {
      if (noise) {
        std::vector<torch::Tensor> inputs;
        for (Item& it : group) {
          it.input = add_noise(it.image.pixels, *noise, file_noise_seed(options.seed, it.job->relative));
          inputs.push_back(it.input);
        }
        std::vector<torch::Tensor> outputs = denoise_images(model, inputs, options.tiling);
        for (size_t k = 0; k < group.size(); ++k) group[k].denoised = outputs[k];
      } else {
        std::vector<cv::Mat> inputs;
        for (const Item& it : group) inputs.push_back(it.samples.color);
        std::vector<cv::Mat> outputs = denoise_mats(model, inputs, options.tiling);
        for (size_t k = 0; k < group.size(); ++k) group[k].denoised_samples = outputs[k];
      }
    } catch (const std::exception& e) {
      for (Item& it : group) {
        it.state = Item::State::kFailed;
        it.error = it.job->path + ": " + e.what();
      }
    }
    for (Item& it : group) finished.push(std::move(it));
    group.clear();
  };

  try {
    std::vector<Item> group;
    while (std::optional<Item> item = decoded.pop()) {
      if (item->state != Item::State::kLoaded) {
        run_group(group);
        finished.push(std::move(*item));
      } else if (!is_small(*item)) {
        run_group(group);
        group.push_back(std::move(*item));
        run_group(group);
      } else {
        if (!group.empty() && models.key(group.front().channels()) != models.key(item->channels())) run_group(group);
        group.push_back(std::move(*item));
        if (static_cast<int>(group.size()) >= options.tiling.batch) run_group(group);
      }
    }
    run_group(group);
  } catch (...) {
    decoded.close();
    finished.close();
    reader.join();
    writer.join();
    throw;
  }
  finished.close();
  reader.join();
  writer.join();

  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  bar.finish(fixed(report.megapixels / std::max(report.seconds, 1e-9), 2) + " MP/s");
  const double n = static_cast<double>(report.denoised);
  report.noisy_psnr = noise && n > 0 ? sums[0] / n : nan;
  report.noisy_ssim = noise && n > 0 ? sums[1] / n : nan;
  report.denoised_psnr = noise && n > 0 ? sums[2] / n : nan;
  report.denoised_ssim = noise && n > 0 ? sums[3] / n : nan;
  return report;
}

}  // namespace bottleneck

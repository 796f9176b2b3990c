#include "denoise/evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/photo.hpp>
#include <torch/torch.h>

#include "denoise/denoiser.h"
#include "util/error.h"
#include "image/metrics.h"
#include "formats/model_file.h"
#include "data/noise.h"
#include "util/progress.h"
#include "inference/shipped_models.h"
#include "util/text_format.h"

namespace bottleneck {
namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The sigma NLM's h is set from: the sigma itself for fixed Gaussian noise; for other noise the
// standard deviation of the noise actually added to this image (the evaluation knows the clean
// image), an equivalent Gaussian sigma. Impulse noise has no meaningful sigma: NLM is the wrong
// tool there (a median filter is the classic one), so it is skipped, as it is without noise.
std::optional<double> nlm_sigma(const NoiseSpec& spec, const torch::Tensor& clean, const torch::Tensor& noisy) {
  switch (spec.kind) {
    case NoiseKind::kNone:
    case NoiseKind::kSaltPepper:
      return std::nullopt;
    case NoiseKind::kGaussian:
      if (spec.a.lo == spec.a.hi) return spec.a.lo;
      break;
    default:
      break;
  }
  return 255.0 * (noisy - clean).to(torch::kDouble).pow(2).mean().sqrt().item<double>();
}

std::string nlm_note(const NoiseSpec& spec, int channels) {
  switch (spec.kind) {
    case NoiseKind::kNone: return "NLM skipped: no noise";
    case NoiseKind::kSaltPepper: return "NLM skipped: impulse noise has no sigma to set h from";
    default: break;
  }
  const char* h = channels == 3 ? "h = hColor" : "h";
  std::ostringstream s;
  s << std::fixed << std::setprecision(1);
  if (spec.kind == NoiseKind::kGaussian && spec.a.lo == spec.a.hi)
    s << "NLM " << h << " = " << nlm_h(spec.a.lo, channels) << " for sigma " << spec.a.lo;
  else
    s << "NLM " << h << " set per image from an equivalent sigma (RMS of the noise added)";
  return s.str();
}

double mean_of(const std::vector<ImageScore>& v, double ImageScore::*field) {
  if (v.empty()) return kNaN;
  double sum = 0;
  for (const auto& s : v) sum += s.*field;
  return sum / static_cast<double>(v.size());
}


}  // namespace

double nlm_h(double sigma, int channels) {
  // Measured on the first four images of Set12 (gray) and Kodak24 (colour), Gaussian noise, mean
  // PSNR in dB for h = f x sigma (colour: h = hColor = f x sigma):
  //   gray   sigma 15: f 0.8 29.5, 0.9 30.2, 1.0 30.6, 1.1 30.6
  //          sigma 25: f 0.8 27.3, 0.9 28.1, 1.0 28.1, 1.1 27.6
  //          sigma 35: f 0.8 26.1, 0.9 26.3, 1.0 25.7
  //          sigma 50: f 0.7 23.5, 0.8 24.1, 0.9 23.6, 1.0 23.0
  //   colour sigma 15: f 0.5 29.3, 0.6 30.4, 0.8 29.6    (hColor = sigma with h = 0.6 sigma: 29.8)
  //          sigma 25: f 0.5 27.2, 0.6 28.0, 0.8 27.2    (27.6)
  //          sigma 50: f 0.5 25.3, 0.6 25.1, 0.8 24.4    (25.0)
  // so f = 1.0 (gray) / 0.6 (colour) up to sigma 25, falling linearly to 0.8 / 0.5 at sigma 50.
  const double t = std::clamp((sigma - 25.0) / 25.0, 0.0, 1.0);
  const double f = channels == 3 ? 0.6 - 0.1 * t : 1.0 - 0.2 * t;
  return f * sigma;
}

torch::Tensor nlm_denoise(const torch::Tensor& noisy, double sigma, double h_given) {
  const int channels = static_cast<int>(noisy.size(0));
  const cv::Mat src = tensor_to_mat(noisy.clamp(0, 1), CV_8U);
  cv::Mat dst;
  const float h = static_cast<float>(h_given > 0 ? h_given : nlm_h(sigma, channels));
  // Template 7 x 7 and search 21 x 21 are OpenCV's defaults (Buades et al.'s recommendation).
  if (channels == 3)
    cv::fastNlMeansDenoisingColored(src, dst, h, h, 7, 21);
  else
    cv::fastNlMeansDenoising(src, dst, h, 7, 21);
  return mat_to_tensor(dst);
}

EvalResult evaluate(const EvalOptions& options, const Logger& log) {
  if (options.clean.empty()) throw UsageError("--clean DIR is required");
  if (options.max_images < 0) throw UsageError("--max-images must be >= 0");
  if (!(options.nlm_h >= 0 && options.nlm_h <= 1000)) throw UsageError("--nlm-h must be in [0, 1000] (0 = from the noise level)");
  const bool real_pairs = !options.pairs.empty();
  // Real pairs are one table row; the noise spec list is not used then.
  const std::vector<NoiseSpec> specs = real_pairs ? std::vector<NoiseSpec>{NoiseSpec{}} : parse_noise_list(options.noise);
  if (specs.empty()) throw UsageError("--noise needs at least one spec");
  std::error_code ec;
  if (!fs::exists(options.clean, ec)) throw Error(ErrorKind::kIo, options.clean, "no such file or directory");
  if (real_pairs && !fs::exists(options.pairs, ec)) throw Error(ErrorKind::kIo, options.pairs, "no such file or directory");
  const bool folder = fs::is_directory(options.clean, ec);
  EvalResult result;
  std::vector<Error> unlisted;
  std::vector<std::string> files = list_images(options.clean, &unlisted);
  for (const Error& e : unlisted) {
    log.warn(e.what());
    result.failures.push_back(e.what());
  }
  if (files.empty()) throw Error(options.clean, "no images found");
  if (options.max_images > 0 && static_cast<int>(files.size()) > options.max_images) files.resize(options.max_images);

  result.clean = options.clean;
  result.pairs = options.pairs;
  result.seed = options.seed;
  // The model is loaded at the first readable image: without --model, that image decides
  // between the shipped gray and colour denoisers.
  std::unique_ptr<InferenceModel> model;
  int channels = 0;
  auto load_model_for = [&](const ImageData& first) {
    const std::string family = shipped_family_of(options.model);
    result.model = !options.model.empty() && family.empty() ? options.model
                                                            : shipped_model(static_cast<int>(first.pixels.size(0)), family);
    model = load_model(result.model, options.tiling.device, load_options(options.precision));
    channels = model->channels();
    result.model_arch = to_json(model->info().arch);
    result.channels = channels;
    for (const NoiseSpec& spec : specs) {
      LevelResult level;
      level.noise = real_pairs ? "real (" + options.pairs + ")" : to_string(spec);
      level.nlm_note = !options.nlm ? "NLM not run (--no-nlm)"
                       : options.nlm_h > 0 ? "NLM h = " + fixed(options.nlm_h, 2) + " for every image (given)"
                       : real_pairs ? std::string("NLM ") + (channels == 3 ? "h = hColor" : "h") +
                                          " set per image from a noise estimate of the noisy image (flattest 16x16 blocks)"
                                    : nlm_note(spec, channels);
      result.levels.push_back(level);
    }
    // The first forward pass pays for allocator and kernel set-up; keep it out of the timings.
    model->forward(torch::zeros({1, channels, 64, 64}).to(options.tiling.device));
  };

  // NLM gets as many threads as the model (OpenCV's pool is separate from torch's).
  const int cv_threads = cv::getNumThreads();
  cv::setNumThreads(torch::get_num_threads());
  struct RestoreThreads {
    int n;
    ~RestoreThreads() { cv::setNumThreads(n); }
  } restore{cv_threads};

  ProgressBar::Options bar_options;
  bar_options.label = "eval";
  bar_options.unit = "images";
  bar_options.tty = options.progress_tty;
  bar_options.enabled = log.enabled(LogLevel::kInfo);
  const int64_t total = static_cast<int64_t>(files.size() * specs.size());
  ProgressBar bar(total, 0, bar_options, std::cerr);
  std::vector<double> nlm_seconds(specs.size(), 0), model_seconds(specs.size(), 0);
  int64_t done = 0;
  double megapixels = 0;
  for (const std::string& file : files) {
    const std::string name = folder ? fs::path(file).lexically_relative(options.clean).generic_string()
                                    : fs::path(file).filename().string();
    // An unreadable file is reported and left out; the numbers cover the rest, and the result
    // lists what is missing so they are not mistaken for the whole folder's.
    ImageData image;
    torch::Tensor real_noisy;
    try {
      image = load_image(file, options.max_pixels);
      if (real_pairs) {
        const std::string partner = folder ? (fs::path(options.pairs) / name).string() : options.pairs;
        real_noisy = load_image(partner, options.max_pixels).pixels;
        if (!real_noisy.sizes().equals(image.pixels.sizes()))
          throw Error(ErrorKind::kInvalidData, partner, "is not the size of its clean image " + file);
      }
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      log.warn(e.what());
      result.failures.push_back(e.what());
      done += static_cast<int64_t>(specs.size());
      if (done < total) bar.update(done, name);
      continue;
    }
    if (!model) load_model_for(image);
    const torch::Tensor clean = to_channels(image.pixels, channels);
    megapixels += static_cast<double>(clean.size(1) * clean.size(2)) / 1e6;
    for (size_t k = 0; k < specs.size(); ++k) {
      ImageScore score;
      score.name = name;
      const torch::Tensor noisy = real_pairs ? to_channels(real_noisy, channels)
                                             : add_noise(clean, specs[k], file_noise_seed(options.seed, name));
      const torch::Tensor noisy_clipped = noisy.clamp(0, 1);
      score.noisy_psnr = psnr(noisy_clipped, clean);
      score.noisy_ssim = ssim(noisy_clipped, clean);
      score.noise_rms = 255.0 * (noisy - clean).to(torch::kDouble).pow(2).mean().sqrt().item<double>();

      score.nlm_psnr = score.nlm_ssim = score.nlm_sigma = kNaN;
      std::optional<double> sigma;
      if (options.nlm)
        sigma = real_pairs ? std::optional<double>(255.0 * estimate_noise_sigma(noisy)) : nlm_sigma(specs[k], clean, noisy);
      if (sigma) {
        score.nlm_sigma = *sigma;
        const auto start = Clock::now();
        const torch::Tensor nlm = nlm_denoise(noisy, *sigma, options.nlm_h);
        nlm_seconds[k] += seconds_since(start);
        score.nlm_psnr = psnr(nlm, clean);
        score.nlm_ssim = ssim(nlm, clean);
      }

      const auto start = Clock::now();
      const torch::Tensor out = denoise_images(*model, {noisy}, options.tiling)[0];
      model_seconds[k] += seconds_since(start);
      score.model_psnr = psnr(out, clean);
      score.model_ssim = ssim(out, clean);
      result.levels[k].images.push_back(score);
      if (++done < total)  // the last: finish()
        bar.update(done, result.levels[k].noise + " " + name);
    }
  }
  bar.finish();
  if (!model) throw Error(options.clean, "no readable images");

  for (size_t k = 0; k < specs.size(); ++k) {
    LevelResult& level = result.levels[k];
    level.noisy = {mean_of(level.images, &ImageScore::noisy_psnr), mean_of(level.images, &ImageScore::noisy_ssim), 0};
    level.nlm = {mean_of(level.images, &ImageScore::nlm_psnr), mean_of(level.images, &ImageScore::nlm_ssim),
                 std::isnan(level.images.front().nlm_psnr) ? kNaN : nlm_seconds[k] / megapixels};
    level.model = {mean_of(level.images, &ImageScore::model_psnr), mean_of(level.images, &ImageScore::model_ssim),
                   model_seconds[k] / megapixels};
  }
  return result;
}

std::string eval_table(const EvalResult& r) {
  std::ostringstream s;
  const size_t images = r.levels.empty() ? 0 : r.levels.front().images.size();
  s << "model " << r.model << ", " << images << " image(s) from " << r.clean << " in "
    << (r.channels == 3 ? "colour" : "gray") << ", seed " << r.seed << "\n\n"
    << "| noise | noisy PSNR | noisy SSIM | NLM PSNR | NLM SSIM | model PSNR | model SSIM | NLM s/MP | model s/MP |\n"
    << "|---|--:|--:|--:|--:|--:|--:|--:|--:|\n";
  for (const LevelResult& l : r.levels) {
    s << "| " << l.noise << " | " << table_cell(l.noisy.psnr, 2) << " | " << table_cell(l.noisy.ssim, 4) << " | "
      << table_cell(l.nlm.psnr, 2) << " | " << table_cell(l.nlm.ssim, 4) << " | " << table_cell(l.model.psnr, 2) << " | "
      << table_cell(l.model.ssim, 4) << " | " << table_cell(l.nlm.seconds_per_megapixel, 3) << " | "
      << table_cell(l.model.seconds_per_megapixel, 3) << " |\n";
  }
  s << (r.pairs.empty() ? "\nPSNR in dB on outputs clipped to [0,1]; noise added to the float image, not clipped or quantised.\n"
                        : "\nPSNR in dB on outputs clipped to [0,1]; real noisy images against their clean partners.\n");
  for (const LevelResult& l : r.levels) s << l.noise << ": " << l.nlm_note << "\n";
  if (!r.failures.empty()) {
    s << "\nNot in these numbers (" << r.failures.size() << " could not be read):\n";
    for (const std::string& f : r.failures) s << "  " << f << "\n";
  }
  return s.str();
}

std::string eval_json(const EvalResult& r) {
  nlohmann::json j;
  j["model"] = r.model;
  j["arch"] = nlohmann::json::parse(r.model_arch, nullptr, false);
  j["clean"] = r.clean;
  j["pairs"] = r.pairs;
  j["channels"] = r.channels;
  j["seed"] = r.seed;
  j["failures"] = r.failures;
  j["levels"] = nlohmann::json::array();
  for (const LevelResult& l : r.levels) {
    auto method = [](const MethodScore& m) {
      return nlohmann::json{{"psnr", json_number<nlohmann::json>(m.psnr)}, {"ssim", json_number<nlohmann::json>(m.ssim)},
                            {"seconds_per_megapixel", json_number<nlohmann::json>(m.seconds_per_megapixel)}};
    };
    nlohmann::json level{{"noise", l.noise}, {"nlm_note", l.nlm_note}, {"images", l.images.size()},
                         {"noisy", method(l.noisy)}, {"nlm", method(l.nlm)}, {"model", method(l.model)}};
    level["per_image"] = nlohmann::json::array();
    for (const ImageScore& s : l.images)
      level["per_image"].push_back({{"name", s.name},
                                    {"noisy_psnr", json_number<nlohmann::json>(s.noisy_psnr)}, {"noisy_ssim", json_number<nlohmann::json>(s.noisy_ssim)},
                                    {"nlm_psnr", json_number<nlohmann::json>(s.nlm_psnr)}, {"nlm_ssim", json_number<nlohmann::json>(s.nlm_ssim)},
                                    {"nlm_sigma", json_number<nlohmann::json>(s.nlm_sigma)}, {"noise_rms", json_number<nlohmann::json>(s.noise_rms)},
                                    {"model_psnr", json_number<nlohmann::json>(s.model_psnr)}, {"model_ssim", json_number<nlohmann::json>(s.model_ssim)}});
    j["levels"].push_back(level);
  }
  return j.dump(2) + "\n";
}

}  // namespace bottleneck

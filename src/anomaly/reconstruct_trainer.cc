#include "anomaly/reconstruct_trainer.h"

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>

#include <torch/torch.h>

#include "anomaly/anomaly_model.h"
#include "data/dataset.h"
#include "data/fashion_mnist.h"
#include "data/noise.h"
#include "formats/model_file.h"
#include "image/image_io.h"
#include "nets/models.h"
#include "report/plot.h"
#include "train/autoencoder_checkpoint.h"
#include "train/objective.h"
#include "train/run_directory.h"
#include "train/training_loop.h"
#include "util/error.h"
#include "util/text_format.h"

namespace bottleneck {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr char kFashionPrefix[] = "fashion-mnist:";
constexpr int kDefaultFashionValidation = 1000;

// Every image goes through `prep` (model_input at the run's settings) as it is loaded.
using Prep = std::function<torch::Tensor(const torch::Tensor&)>;

std::vector<torch::Tensor> load_folder(const std::string& dir, const Prep& prep, int64_t max_pixels,
                                       const Logger& log, std::vector<std::string>* skipped, int limit = 0) {
  std::vector<Error> unlisted;
  const std::vector<std::string> files = list_images(dir, &unlisted);
  for (const Error& e : unlisted) {
    log.warn(e.what(), " (skipped)");
    skipped->push_back(e.what());
  }
  std::vector<torch::Tensor> images;
  for (const std::string& f : files) {
    if (limit > 0 && static_cast<int>(images.size()) >= limit) break;
    try {
      images.push_back(prep(load_image(f, max_pixels).pixels));
    } catch (const Error& e) {
      log.warn(e.what(), " (skipped)");
      skipped->push_back(e.what());
    }
  }
  if (images.empty()) throw Error(ErrorKind::kInvalidData, dir, "no readable images");
  return images;
}

std::vector<torch::Tensor> fashion_images(const FashionMnistSource& source, bool train, const Prep& prep,
                                          int limit) {
  const LabelledImages set = read_fashion_mnist(source.dir, train);
  std::vector<torch::Tensor> images;
  const auto labels = set.labels.accessor<int64_t, 1>();
  for (int64_t i = 0; i < set.images.size(0); ++i) {
    if (!source.classes.empty() &&
        std::find(source.classes.begin(), source.classes.end(), static_cast<int>(labels[i])) == source.classes.end())
      continue;
    images.push_back(prep(set.images[i]));
    if (limit > 0 && static_cast<int>(images.size()) >= limit) break;
  }
  if (images.empty()) throw Error(ErrorKind::kInvalidData, source.dir, "no images of the classes asked for");
  return images;
}

class ReconstructObjective final : public TrainingObjective {
 public:
  ReconstructObjective(const TrainOptions& o, const TrainControl& control, const Runtime& runtime, const Logger& log)
      : options_(o), device_(runtime.device) {
    const int channels = o.arch.in_channels;
    const Prep prep = [&](const torch::Tensor& chw) { return model_input(chw, channels, o.resize, o.standardize); };
    noise_ = parse_noise(o.noise.empty() ? "none" : o.noise);
    std::vector<torch::Tensor> train, val;
    if (is_fashion_mnist_source(o.data_dir)) {
      const FashionMnistSource source = parse_fashion_mnist_source(o.data_dir);
      log.info("loading Fashion-MNIST training images from ", source.dir);
      train = fashion_images(source, true, prep, 0);
      if (o.val_dir.empty())
        val = fashion_images(source, false, prep,
                             o.val_max_images > 0 ? o.val_max_images : kDefaultFashionValidation);
    } else {
      log.info("loading training images from ", o.data_dir);
      train = load_folder(o.data_dir, prep, o.max_pixels, log, &skipped_training);
    }
    if (!o.val_dir.empty())
      val = load_folder(o.val_dir, prep, o.max_pixels, log, &skipped_validation, o.val_max_images);
    if (o.arch.dense()) {
      // A dense code takes one image size: the crops must be whole images, as scoring sees them.
      const int side = o.arch.input_size;
      for (const auto* set : {&train, &val})
        for (const torch::Tensor& image : *set)
          if (image.size(1) != side || image.size(2) != side)
            throw UsageError("--latent: the network takes " + std::to_string(side) + " x " + std::to_string(side) +
                             " images, but " + (set == &train ? o.data_dir : o.val_dir) + " holds one of " +
                             std::to_string(image.size(2)) + " x " + std::to_string(image.size(1)) +
                             ": give --resize " + std::to_string(side));
    }
    val_ = std::move(val);
    images_ = train.size();
    dataset_ = std::make_unique<PatchDataset>(std::move(train), std::vector<torch::Tensor>{}, o.patches);

    torch::manual_seed(o.seed);
    model_ = make_model(o.arch);
    if (!control.resume && !o.init.empty()) {
      copy_weights(o.init, o.arch, *model_);
      log.info("starting from the weights of ", o.init);
    }
    model_->to(device_);
    model_->set_compute_dtype(o.precision == "bf16" ? torch::kBFloat16 : torch::kFloat);
  }

  torch::nn::Module& module() override { return *model_; }
  std::string describe() const override {
    return std::string(name_of(options_.arch.kind)) + " (" + std::to_string(parameter_count(*model_)) +
           " parameters, " + fixed(2 * model_->macs_per_pixel() / 1e3, 1) + " kFLOP/pixel) reconstructing " +
           std::to_string(images_) + " images" +
           (options_.resize > 0 ? " at " + std::to_string(options_.resize) + " x " + std::to_string(options_.resize) : "") +
           (options_.standardize ? ", each standardized" : "");
  }
  std::string progress_label() const override { return "train"; }
  double training_pixels() const override { return static_cast<double>(dataset_->pixel_count()); }
  // Crops (and, with --noise, their noisy copies) from (seed, step), as the denoiser's.
  TrainBatch make_batch(int64_t index) const override {
    return dataset_->batch(options_.seed, index, noise_, data_shard());
  }

  torch::Tensor loss(const TrainBatch& batch, int64_t) override {
    const torch::Tensor clean = batch.clean.to(device_);
    const torch::Tensor input = noise_.kind == NoiseKind::kNone ? clean : batch.noisy.to(device_);
    const torch::Tensor output = model_->forward(input);
    return options_.loss == "l1" ? torch::l1_loss(output, clean) : torch::mse_loss(output, clean);
  }

  std::vector<std::string> validation_columns() const override { return {"val_mse", "val_psnr"}; }
  bool can_validate() const override { return !val_.empty(); }
  bool lower_is_better() const override { return false; }
  ValidationOutcome validate(const RunDirectory&, int64_t) override {
    const bool was_training = model_->is_training();
    model_->eval();
    double se = 0, psnr_sum = 0;
    int64_t values = 0;
    {
      torch::NoGradGuard no_grad;
      // Images of one size go through in batches; any size works, one by one otherwise.
      for (size_t i = 0; i < val_.size();) {
        size_t j = i + 1;
        while (j < val_.size() && j - i < 64 && val_[j].sizes() == val_[i].sizes()) ++j;
        std::vector<torch::Tensor> part(val_.begin() + static_cast<long>(i), val_.begin() + static_cast<long>(j));
        const torch::Tensor x = torch::stack(part).to(device_);
        const torch::Tensor d = (model_->forward(x).clamp(0, 1) - x).pow(2);
        se += d.sum().item<double>();
        values += d.numel();
        const torch::Tensor mse = d.flatten(1).mean(1).clamp_min(1e-10);
        psnr_sum += (-10 * torch::log10(mse)).sum().item<double>();
        i = j;
      }
    }
    if (was_training) model_->train();
    ValidationOutcome out;
    const double mse = se / static_cast<double>(values);
    last_val_ = psnr_sum / static_cast<double>(val_.size());
    out.figures = {mse, last_val_};
    out.figure = last_val_;
    out.summary = "reconstruction MSE " + significant(mse, 4) + ", PSNR " + fixed(last_val_, 2) + " dB";
    return out;
  }
  std::string figure_text(double figure) const override { return fixed(figure, 2) + " dB"; }
  std::string progress_suffix() const override {
    return std::isfinite(last_val_) ? " | val " + fixed(last_val_, 2) + " dB" : "";
  }

  void save_checkpoint(const std::string& path, const torch::optim::Optimizer* optimizer,
                       const LoopState& state) const override {
    save_autoencoder_checkpoint(path, *model_, optimizer, state, {options_.arch, to_string(noise_), last_val_});
  }
  LoopState load_checkpoint(const std::string& path, torch::optim::Optimizer* optimizer) override {
    return load_autoencoder_checkpoint(path, *model_, optimizer, last_val_);
  }

  void write_curves(const std::string& path, const MetricsLog& metrics) const override {
    std::vector<double> li, l, vi, vp;
    metrics.series("loss", &li, &l);
    metrics.series("val_psnr", &vi, &vp);
    write_training_curves(path, li, l, vi, vp, {});
  }

  double last_val() const { return last_val_; }
  std::vector<std::string> skipped_training, skipped_validation;

 private:
  const TrainOptions options_;
  torch::Device device_;
  NoiseSpec noise_;
  std::unique_ptr<PatchDataset> dataset_;
  std::vector<torch::Tensor> val_;
  size_t images_ = 0;
  Autoencoder model_{nullptr};
  double last_val_ = kNaN;
};

}  // namespace

bool is_fashion_mnist_source(const std::string& data) { return data.rfind(kFashionPrefix, 0) == 0; }

FashionMnistSource parse_fashion_mnist_source(const std::string& data) {
  if (!is_fashion_mnist_source(data)) throw UsageError("--data " + data + ": expected fashion-mnist:DIR[?classes=0,3]");
  FashionMnistSource s;
  std::string rest = data.substr(sizeof kFashionPrefix - 1);
  const size_t q = rest.find('?');
  s.dir = rest.substr(0, q);
  if (s.dir.empty()) s.dir = kFashionMnistDir;
  if (q != std::string::npos) {
    const std::string query = rest.substr(q + 1);
    const std::string key = "classes=";
    if (query.rfind(key, 0) != 0)
      throw UsageError("--data " + data + ": the only query is ?classes=LIST, e.g. ?classes=0,3");
    std::stringstream list(query.substr(key.size()));
    std::string item;
    while (std::getline(list, item, ',')) {
      if (item.size() != 1 || item[0] < '0' || item[0] > '9')
        throw UsageError("--data " + data + ": classes are labels 0 to 9, got '" + item + "'");
      s.classes.push_back(item[0] - '0');
    }
    if (s.classes.empty()) throw UsageError("--data " + data + ": ?classes= lists no class");
  }
  return s;
}

TrainResult train_reconstruct(const TrainOptions& options, const TrainControl& control, const Runtime& runtime,
                              const Logger& log) {
  if (options.arch.head == Head::kResidual)
    throw UsageError("--task reconstruct needs --head sigmoid or linear (a residual head would pass the input through)");
  std::unique_ptr<TrainingObjective> objective;
  const LoopResult loop = run_training(
      options, control, runtime, log,
      [&](const RunDirectory&) { return std::make_unique<ReconstructObjective>(options, control, runtime, log); },
      &objective);
  auto& task = static_cast<ReconstructObjective&>(*objective);
  TrainResult result;
  result.iteration = loop.iteration;
  result.finished = loop.finished;
  result.best_val_psnr = loop.best;
  result.last_val_psnr = task.last_val();
  result.last_val_psnr_noisy = kNaN;
  result.seconds = loop.seconds;
  result.patches_per_second = loop.patches_per_second;
  result.skipped_training = std::move(task.skipped_training);
  result.skipped_validation = std::move(task.skipped_validation);
  return result;
}

}  // namespace bottleneck

#include "data/dataset.h"

#include <filesystem>
#include <random>

#include <torch/torch.h>

#include "util/error.h"
#include "image/image_io.h"
#include "util/seeds.h"

namespace bottleneck {
namespace fs = std::filesystem;

namespace {


// Independent 64-bit seeds for each (seed, index, stream), so batch k's crops and its noise do
// not depend on any other batch.
uint64_t derive_seed(uint64_t seed, int64_t index, uint64_t stream) {
  return splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(index)) ^ stream);
}

// Uniform in [0, n): std::uniform_int_distribution is implementation-defined, and a batch must
// be the same whatever the standard library. Rejection removes the modulo bias.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  uint64_t limit = ~uint64_t(0) - (~uint64_t(0) % n);
  uint64_t r;
  do r = rng(); while (r >= limit);
  return r % n;
}

// Pads one spatial dimension (1 = H, 2 = W of a C x H x W tensor) up to `size`, centred.
// Reflection keeps local statistics natural; it needs a pad smaller than the image, so an image
// too small for that is replicated instead.
torch::Tensor pad_to(const torch::Tensor& chw, int dim, int64_t size) {
  int64_t have = chw.size(dim);
  if (have >= size) return chw;
  int64_t before = (size - have) / 2, after = size - have - before;
  std::vector<int64_t> pads = dim == 2 ? std::vector<int64_t>{before, after, 0, 0}
                                       : std::vector<int64_t>{0, 0, before, after};
  auto batched = chw.unsqueeze(0);
  bool reflect = std::max(before, after) < have;
  auto out = reflect ? torch::reflection_pad2d(batched, pads) : torch::replication_pad2d(batched, pads);
  return out.squeeze(0);
}

torch::Tensor pad_for_patch(const torch::Tensor& chw, int patch) {
  return pad_to(pad_to(chw, 1, patch), 2, patch).contiguous();
}

// The 8 symmetries of the square: bit 0 flips left-right, bit 1 flips up-down, bit 2 transposes.
torch::Tensor dihedral(const torch::Tensor& chw, uint64_t t) {
  torch::Tensor out = chw;
  if (t & 1) out = out.flip({2});
  if (t & 2) out = out.flip({1});
  if (t & 4) out = out.transpose(1, 2);
  return out;
}

std::string relative_name(const std::string& file, const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return fs::path(file).filename().string();
  return fs::path(file).lexically_relative(root).generic_string();
}

std::string size_text(const torch::Tensor& chw) {
  return std::to_string(chw.size(2)) + "x" + std::to_string(chw.size(1)) + "x" + std::to_string(chw.size(0));
}

// An unreadable input (file or folder) does not stop a long run; it is reported and counted,
// so the caller can still fail the command at the end.
void skip(const Error& e, const Logger& log, std::vector<std::string>* skipped) {
  log.warn(e.what(), " (skipped)");
  if (skipped) skipped->push_back(e.what());
}

}  // namespace

PatchDataset::PatchDataset(std::vector<torch::Tensor> clean, std::vector<torch::Tensor> noisy,
                           PatchOptions options)
    : options_(options) {
  if (options.patch < 8) throw UsageError("--patch must be >= 8, got " + std::to_string(options.patch));
  if (options.batch < 1) throw UsageError("--batch must be >= 1, got " + std::to_string(options.batch));
  if (clean.empty()) throw Error("no training images");
  if (!noisy.empty() && noisy.size() != clean.size())
    throw Error(std::to_string(noisy.size()) + " noisy images for " + std::to_string(clean.size()) +
                " clean images");
  int64_t channels = -1;
  for (size_t i = 0; i < clean.size(); ++i) {
    const auto& c = clean[i];
    if (!c.defined() || c.dim() != 3 || c.size(1) < 1 || c.size(2) < 1)
      throw Error("training image " + std::to_string(i) + " is not a C x H x W tensor");
    if (channels < 0) channels = c.size(0);
    if (c.size(0) != channels)
      throw Error("training image " + std::to_string(i) + " has " + std::to_string(c.size(0)) +
                  " channels, the first has " + std::to_string(channels));
    if (!noisy.empty() && (!noisy[i].defined() || !noisy[i].sizes().equals(c.sizes())))
      throw Error("noisy image " + std::to_string(i) + " does not have the shape of its clean image (" +
                  size_text(c) + ")");
    clean_.push_back(pad_for_patch(c.detach().to(torch::kCPU, torch::kFloat), options.patch));
    if (!noisy.empty())
      noisy_.push_back(pad_for_patch(noisy[i].detach().to(torch::kCPU, torch::kFloat), options.patch));
  }
}

int PatchDataset::channels() const { return static_cast<int>(clean_.front().size(0)); }

PatchDataset PatchDataset::from_folder(const std::string& clean_dir, const std::string& noisy_dir,
                                       int channels, PatchOptions options, const Logger& log,
                                       int64_t max_pixels, std::vector<std::string>* skipped) {
  std::vector<torch::Tensor> clean, noisy;
  std::error_code ec;
  bool noisy_is_file = !noisy_dir.empty() && !fs::is_directory(noisy_dir, ec);
  // Unreadable files are skipped with a warning; a missing partner or a size mismatch is a
  // broken data set and stops the run.
  auto try_load = [&](const std::string& file) {
    try {
      return to_channels(load_image(file, max_pixels).pixels, channels);
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      skip(e, log, skipped);
      return torch::Tensor();
    }
  };
  std::vector<Error> unlisted;
  const std::vector<std::string> files = list_images(clean_dir, &unlisted);
  for (const Error& e : unlisted) skip(e, log, skipped);
  for (const std::string& file : files) {
    std::string partner;
    if (!noisy_dir.empty()) {
      partner = noisy_is_file ? noisy_dir : (fs::path(noisy_dir) / relative_name(file, clean_dir)).string();
      if (!fs::exists(fs::symlink_status(partner, ec)))
        throw Error(file, "no noisy partner: expected " + partner);
    }
    torch::Tensor c = try_load(file);
    if (!c.defined()) continue;
    if (!partner.empty()) {
      torch::Tensor n = try_load(partner);
      if (!n.defined()) continue;
      if (!n.sizes().equals(c.sizes()))
        throw Error(partner, "is " + size_text(n) + " (W x H x C) but its clean image " + file + " is " +
                                 size_text(c));
      noisy.push_back(n);
    }
    clean.push_back(c);
  }
  if (clean.empty()) throw Error(clean_dir, "no readable images");
  log.info("loaded ", clean.size(), noisy_dir.empty() ? " images" : " image pairs", " from ", clean_dir);
  return PatchDataset(std::move(clean), std::move(noisy), options);
}

TrainBatch PatchDataset::batch(uint64_t seed, int64_t index, const NoiseSpec& noise, const DataShard& shard) const {
  if (shard.count < 1 || shard.index < 0 || shard.index >= shard.count)
    throw Error("data shard " + std::to_string(shard.index) + " of " + std::to_string(shard.count) + " (internal)");
  torch::NoGradGuard no_grad;
  std::mt19937_64 rng(derive_seed(seed, index, 0));
  const int64_t p = options_.patch;
  // Noise made from the step's seed depends on the whole batch's shape (and, for Poisson, its
  // pixels): a shard gets the slice of the whole batch's noise, not noise of its own.
  const bool whole_batch_noise = shard.count > 1 && !has_pairs() && noise.kind != NoiseKind::kNone;
  const int64_t total = static_cast<int64_t>(options_.batch) * shard.count;
  const int64_t first = static_cast<int64_t>(options_.batch) * shard.index, last = first + options_.batch;
  const int64_t cut_from = whole_batch_noise ? 0 : first, cut_to = whole_batch_noise ? total : last;
  std::vector<torch::Tensor> clean, noisy;
  clean.reserve(cut_to - cut_from);
  for (int64_t b = 0; b < total; ++b) {
    // Every patch's draws are made, in order, so a shard's crops are the whole batch's.
    size_t i = uniform_below(rng, clean_.size());
    const torch::Tensor& img = clean_[i];
    int64_t y = static_cast<int64_t>(uniform_below(rng, img.size(1) - p + 1));
    int64_t x = static_cast<int64_t>(uniform_below(rng, img.size(2) - p + 1));
    uint64_t t = options_.augment ? uniform_below(rng, 8) : 0;
    if (b < cut_from || b >= cut_to) continue;
    auto crop = [&](const torch::Tensor& src) { return dihedral(src.slice(1, y, y + p).slice(2, x, x + p), t); };
    clean.push_back(crop(img));
    if (has_pairs()) noisy.push_back(crop(noisy_[i]));
  }
  TrainBatch out;
  out.index = index;
  out.shard = shard;
  out.clean = torch::stack(clean);
  out.noisy = has_pairs() ? torch::stack(noisy) : add_noise(out.clean, noise, derive_seed(seed, index, 1));
  if (whole_batch_noise) {
    out.clean = out.clean.narrow(0, first, options_.batch).contiguous();
    out.noisy = out.noisy.narrow(0, first, options_.batch).contiguous();
  }
  return out;
}

BatchLoader::BatchLoader(std::function<TrainBatch(int64_t)> make, int64_t first, int workers, int prefetch)
    : make_(std::move(make)), prefetch_(std::max(prefetch, 1)), next_to_make_(first), next_to_give_(first) {
  // workers <= 0: no threads, next() makes each batch itself (handy when debugging).
  for (int w = 0; w < workers; ++w) threads_.emplace_back([this] { work(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

// A failed index is recorded in ready_ as a batch without tensors, so next() hands out every
// batch before it and throws exactly when it reaches it; error_ holds the exception of the
// lowest failed index.
void BatchLoader::work() {
  torch::NoGradGuard no_grad;
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || error_ || next_to_make_ < next_to_give_ + prefetch_; });
    if (stop_ || error_) return;
    int64_t index = next_to_make_++;
    lock.unlock();
    TrainBatch batch;
    std::exception_ptr failure;
    try {
      batch = make_(index);
    } catch (...) {
      failure = std::current_exception();
    }
    lock.lock();
    if (failure) {
      bool lower_failed = false;
      for (auto it = ready_.begin(); it != ready_.end() && it->first < index; ++it)
        lower_failed = lower_failed || !it->second.clean.defined();
      if (!error_ || !lower_failed) error_ = failure;
      batch = TrainBatch();
      batch.index = index;
    }
    ready_[index] = std::move(batch);
    cv_.notify_all();
  }
}

TrainBatch BatchLoader::next() {
  if (threads_.empty()) return make_(next_to_give_++);
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [this] { return ready_.count(next_to_give_) || (error_ && next_to_give_ >= next_to_make_); });
  auto it = ready_.find(next_to_give_);
  if (it == ready_.end() || (error_ && !it->second.clean.defined())) std::rethrow_exception(error_);
  TrainBatch batch = std::move(it->second);
  ready_.erase(it);
  ++next_to_give_;
  lock.unlock();
  cv_.notify_all();
  return batch;
}

std::vector<ValidationImage> load_validation_set(const std::string& dir, int channels,
                                                 const NoiseSpec& noise, uint64_t seed,
                                                 const Logger& log, int64_t max_pixels,
                                                 std::vector<std::string>* skipped) {
  torch::NoGradGuard no_grad;
  std::vector<ValidationImage> images;
  std::vector<Error> unlisted;
  std::vector<std::string> files = list_images(dir, &unlisted);
  for (const Error& e : unlisted) skip(e, log, skipped);
  for (size_t i = 0; i < files.size(); ++i) {
    try {
      ValidationImage v;
      v.name = relative_name(files[i], dir);
      v.clean = to_channels(load_image(files[i], max_pixels).pixels, channels).contiguous();
      // Seeded by the position in the sorted listing, so the noise does not depend on which
      // other files happened to be readable.
      v.noisy = add_noise(v.clean.unsqueeze(0), noise, derive_seed(seed, static_cast<int64_t>(i), 2)).squeeze(0);
      images.push_back(std::move(v));
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      skip(e, log, skipped);
    }
  }
  if (images.empty()) throw Error(dir, "no readable images");
  return images;
}

std::vector<ValidationImage> load_validation_pairs(const std::string& clean_dir, const std::string& noisy_dir,
                                                   int channels, const Logger& log, int64_t max_pixels,
                                                   std::vector<std::string>* skipped) {
  torch::NoGradGuard no_grad;
  std::vector<ValidationImage> images;
  std::vector<Error> unlisted;
  const std::vector<std::string> files = list_images(clean_dir, &unlisted);
  for (const Error& e : unlisted) skip(e, log, skipped);
  std::error_code ec;
  for (const std::string& file : files) {
    const std::string name = relative_name(file, clean_dir);
    const std::string partner = (fs::path(noisy_dir) / name).string();
    if (!fs::exists(fs::symlink_status(partner, ec))) throw Error(ErrorKind::kInvalidData, file, "no noisy partner: expected " + partner);
    try {
      ValidationImage v;
      v.name = name;
      v.clean = to_channels(load_image(file, max_pixels).pixels, channels).contiguous();
      v.noisy = to_channels(load_image(partner, max_pixels).pixels, channels).contiguous();
      if (!v.noisy.sizes().equals(v.clean.sizes()))
        throw Error(ErrorKind::kInvalidData, partner,
                    "is " + size_text(v.noisy) + " (W x H x C) but its clean image " + file + " is " + size_text(v.clean));
      images.push_back(std::move(v));
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kUsage || e.kind() == ErrorKind::kInvalidData) throw;
      skip(e, log, skipped);
    }
  }
  if (images.empty()) throw Error(ErrorKind::kInvalidData, clean_dir, "no readable images");
  log.info("loaded ", images.size(), " validation pairs from ", clean_dir, " and ", noisy_dir);
  return images;
}

int64_t PatchDataset::pixel_count() const {
  int64_t n = 0;
  for (const auto& image : clean_) n += image.size(-2) * image.size(-1);
  return n;
}

}  // namespace bottleneck

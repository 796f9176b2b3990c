#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <torch/types.h>

#include "image/image_io.h"
#include "util/log.h"
#include "data/noise.h"
#include "data/patch_options.h"

namespace bottleneck {

// The part of every step's batch one process of a data-parallel run trains on: with `count`
// processes of batch B, the step's batch is the count x B patches one process of batch count x B
// would draw, and shard `index` is patches [index x B, (index + 1) x B) of it. So N processes
// train exactly like one with N times the batch. count = 1: the whole batch.
struct DataShard {
  int index = 0;  // 0 .. count - 1 (the rank)
  int count = 1;  // processes (the world size), >= 1
  bool operator==(const DataShard& o) const { return index == o.index && count == o.count; }
};

// One training step's data.
struct TrainBatch {
  int64_t index = 0;    // step number the batch was made for
  torch::Tensor clean;  // B x C x P x P in [0,1]
  torch::Tensor noisy;  // same shape: synthetic noise, or the real noisy crop of a pair
  DataShard shard;      // the part of the step's batch these patches are
};

// Random patches from images held in memory. A batch is a pure function of (seed, index): the
// loader may build batches ahead, on any thread, in any order, and a resumed run sees exactly
// the batches it would have seen. Images smaller than the patch are reflect-padded.
class PatchDataset {
 public:
  // images: C x H x W float tensors, all with the same C. noisy: empty, or one real noisy
  // image per clean image, same shapes (training on pairs, no synthetic noise).
  PatchDataset(std::vector<torch::Tensor> clean, std::vector<torch::Tensor> noisy,
               PatchOptions options);

  // All images under `clean_dir`, converted to `channels`. With `noisy_dir` non-empty, pairs
  // matched by relative path (a clean file without a partner is an Error naming it).
  // Unreadable files, files over max_pixels and subfolders that cannot be listed are skipped
  // with a warning ("warning: FILE: reason (skipped)") and appended to `skipped` as
  // "FILE: reason"; none readable is an Error.
  static PatchDataset from_folder(const std::string& clean_dir, const std::string& noisy_dir,
                                  int channels, PatchOptions options, const Logger& log,
                                  int64_t max_pixels = kDefaultMaxPixels,
                                  std::vector<std::string>* skipped = nullptr);

  // Synthetic noise is used only when the dataset has no pairs. `shard`'s patches of the step's
  // batch: its crops are those of the whole batch (all are drawn, only the shard's are cut);
  // synthetic noise, which is drawn for the batch as a whole, is made for the whole batch and
  // sliced, so every process pays for the step's full noise.
  TrainBatch batch(uint64_t seed, int64_t index, const NoiseSpec& noise, const DataShard& shard = {}) const;

  size_t size() const { return clean_.size(); }
  // Pixels (per channel) of all clean images: what one epoch covers.
  int64_t pixel_count() const;
  bool has_pairs() const { return !noisy_.empty(); }
  int channels() const;
  const PatchOptions& options() const { return options_; }

 private:
  std::vector<torch::Tensor> clean_;
  std::vector<torch::Tensor> noisy_;
  PatchOptions options_;
};

// Runs make(index) for index = first, first+1, ... on `workers` threads, at most `prefetch`
// batches ahead, and hands them out in order, so data loading overlaps compute.
class BatchLoader {
 public:
  BatchLoader(std::function<TrainBatch(int64_t)> make, int64_t first, int workers, int prefetch);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // Blocks until batch `first + k` (k = calls so far) is ready; rethrows a worker's exception.
  TrainBatch next();

 private:
  void work();

  std::function<TrainBatch(int64_t)> make_;
  int prefetch_;
  int64_t next_to_make_;
  int64_t next_to_give_;
  std::map<int64_t, TrainBatch> ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
};

// Full images for validation, with noise drawn once from a fixed seed so every validation of a
// run (and of a resumed run) sees the same noisy inputs.
struct ValidationImage {
  std::string name;     // path relative to the folder
  torch::Tensor clean;  // C x H x W
  torch::Tensor noisy;  // C x H x W, not clipped
};

// Unreadable files, files over max_pixels and unlistable subfolders are skipped with a warning
// and appended to `skipped`, like from_folder.
std::vector<ValidationImage> load_validation_set(const std::string& dir, int channels,
                                                 const NoiseSpec& noise, uint64_t seed,
                                                 const Logger& log,
                                                 int64_t max_pixels = kDefaultMaxPixels,
                                                 std::vector<std::string>* skipped = nullptr);

// Real noisy / clean pairs for validation: every image under `clean_dir` with its partner at the
// same relative path under `noisy_dir` (a missing partner or a size mismatch is an Error naming
// both files; unreadable files are skipped as above).
std::vector<ValidationImage> load_validation_pairs(const std::string& clean_dir, const std::string& noisy_dir,
                                                   int channels, const Logger& log,
                                                   int64_t max_pixels = kDefaultMaxPixels,
                                                   std::vector<std::string>* skipped = nullptr);

}  // namespace bottleneck

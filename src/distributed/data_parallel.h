#pragma once

// Data-parallel training over a ProcessGroup: every rank holds the same network, trains on its
// own slice of each step's batch, and before every update the gradients are averaged over the
// ranks, so the ranks stay identical and together take the step one process would take on the
// whole batch. Knows nothing of c10d (process_group.h hides it).

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "distributed/process_group.h"

namespace bottleneck {

// Averages gradients in buckets: each bucket is one flat tensor (its parameters' gradients
// copied in), summed over the ranks as one collective, so a network of many small layers costs
// a few collectives per step rather than one per tensor; all buckets are in flight at once.
class GradientReducer {
 public:
  // 1 MiB: the networks trained here hold 0.1-2 MB of float32 weights, so a step sends one to a
  // few buckets and the copies of one bucket overlap the transfer of the one before; DDP's
  // 25 MiB default would make every network here a single bucket.
  static constexpr int64_t kDefaultBucketBytes = int64_t(1) << 20;

  // `parameters`: the trained tensors, in the same order on every rank (a module's parameters()).
  GradientReducer(ProcessGroup& group, std::vector<torch::Tensor> parameters,
                  int64_t bucket_bytes = kDefaultBucketBytes);

  // Between backward and the update: every parameter's gradient becomes its mean over the ranks
  // (a parameter without a gradient contributes zeros and keeps none). `values` ride along in
  // the first bucket and come back averaged (the step's loss, for the log). `what` names the
  // step in errors.
  std::vector<double> average(const std::vector<double>& values, const std::string& what);

  size_t bucket_count() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<torch::Tensor> parameters;
    torch::Tensor flat;  // their gradients end to end, then (first bucket) the riding values
    int64_t gradient_elements = 0;
  };
  ProcessGroup& group_;
  std::vector<Bucket> buckets_;
  size_t riding_ = 0;  // riding values the first bucket has room for
};

// Rank 0's parameters and buffers to every rank (at the start, so all begin from the same state
// whatever each loaded or drew).
void broadcast_module(ProcessGroup& group, torch::nn::Module& module, const std::string& what);

// A 64-bit hash of the module's parameters and buffers, byte for byte in logical order (so a
// channels-last copy hashes as its NCHW twin).
uint64_t weights_fingerprint(torch::nn::Module& module);

// Throws Error "rank R of N: the ranks' weights differ WHEN ..." unless every rank's
// fingerprint is the same; returns it.
uint64_t require_identical_weights(ProcessGroup& group, torch::nn::Module& module, const std::string& when);

}  // namespace bottleneck

#pragma once

// This process's membership of a data-parallel run: rendezvous through c10d::TCPStore, then
// collectives over c10d::ProcessGroupGloo (CPU tensors) or ProcessGroupNCCL (CUDA tensors, when
// built against a CUDA LibTorch). The c10d headers stay in process_group.cc: they cost seconds
// per file, and Gloo's may be missing (then join() refuses, saying so).
//
// Every collective must be called by every rank in the same order. Each one either completes or
// throws Error within the timeout: a rank that died, or stopped answering, ends every other rank
// with "rank R of N: WHAT failed: CAUSE" instead of a hang.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "distributed/distributed_env.h"
#include "util/error.h"
#include "util/log.h"

namespace bottleneck {

// Whether this build can join a process group (it was compiled with Gloo's headers).
bool distributed_training_available();

// The device a rank trains on: CUDA becomes cuda:LOCAL_RANK (one process per GPU, as torchrun
// starts them); the CPU stays the CPU.
c10::Device device_for_rank(const c10::Device& chosen, const DistributedOptions& options);

class ProcessGroup {
 public:
  // A collective in flight; wait() returns once this rank's tensors hold the result.
  class Pending {
   public:
    virtual ~Pending() = default;
    virtual void wait() = 0;
  };

  // Connects to the other ranks (all of them, within options.timeout_s) on `device`'s backend:
  // Gloo for the CPU, NCCL for CUDA. Throws Error "rank R of N: ..." when the store or a peer
  // cannot be reached, and Error of kind kUnsupported when this build has no distributed support.
  static std::unique_ptr<ProcessGroup> join(const DistributedOptions& options, const c10::Device& device,
                                            const Logger& log);
  virtual ~ProcessGroup() = default;

  int rank() const { return options_.rank; }
  int size() const { return options_.world_size; }
  const DistributedOptions& options() const { return options_; }
  // Where the collectives' tensors must be: the CPU for Gloo, this rank's GPU for NCCL.
  const c10::Device& device() const { return device_; }

  // Starts summing `tensor` (contiguous, on the group's device) over the ranks, in place.
  // `what` names it in errors ("the gradient all-reduce of iteration 12").
  virtual std::unique_ptr<Pending> start_sum(torch::Tensor tensor, const std::string& what) = 0;
  // In place, blocking: the element-wise maximum / minimum over the ranks.
  virtual void max(torch::Tensor tensor, const std::string& what) = 0;
  virtual void min(torch::Tensor tensor, const std::string& what) = 0;
  // Rank 0's values of `tensors` to every rank, in place.
  virtual void broadcast(std::vector<torch::Tensor> tensors, const std::string& what) = 0;
  // Rank 0's `bytes` (ignored elsewhere) to every rank, through the store: for files, such as
  // the checkpoint a resumed run starts from, that only rank 0's machine may hold.
  virtual std::string broadcast_bytes(const std::string& bytes, const std::string& what) = 0;

  // Whether `flag` is true on any rank (blocking).
  bool any(bool flag, const std::string& what);

 protected:
  ProcessGroup(DistributedOptions options, c10::Device device) : options_(std::move(options)), device_(device) {}
  // "rank 1 of 2: WHAT failed: CAUSE (...)": the one-line error every collective throws.
  Error failure(const std::string& what, const std::string& cause) const;

 private:
  DistributedOptions options_;
  c10::Device device_;
};

}  // namespace bottleneck

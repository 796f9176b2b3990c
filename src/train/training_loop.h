#pragma once

// The training loop every task runs (objective.h is the seam): run directory, optimiser, steps,
// stops, metrics, checkpoints. Batches come from (seed, step), so a run stopped at any point and
// resumed ends with the same weights as an uninterrupted one (on the CPU, same thread count).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "runtime/runtime.h"
#include "train/train_config.h"
#include "train/trainer.h"
#include "util/log.h"

namespace bottleneck {

class RunDirectory;
class TrainingObjective;

struct LoopResult {
  int64_t iteration = 0;
  bool finished = false;
  double best = 0;                // NaN without validation
  double patches_per_second = 0;  // this invocation, with the loader
  double seconds = 0;             // wall time of this invocation's loop
  double communication_seconds = 0;  // of which in collectives (data-parallel runs; else 0)
  int processes = 1;              // ranks that trained together (patches_per_second is theirs)
};

// Builds the task's objective once the run directory is open: loads the data, builds and seeds
// the network (with `options.init` unless resuming) on the runtime's device.
using ObjectiveFactory = std::function<std::unique_ptr<TrainingObjective>(const RunDirectory& run)>;

// Runs `options` (validated here) to its end or a stop of `control`:
//   config.json  the resolved options   metrics.csv  loss, lr, the objective's figures
//   curves.png   the objective's plot   last.ckpt    latest state   best.ckpt  best validation
// On resume the checkpoint must be of the same run (task, network, data, noise, seed, patches):
// another run's checkpoint or config is refused, naming the field. Throws Error for bad data, a
// non-finite loss or weights (the last good checkpoint is kept), UsageError for bad options.
// `*objective_out`, when given, receives the objective (for the task's result).
//
// With control.distributed.world_size > 1 this process is one rank of a data-parallel run
// (distributed/process_group.h): it joins the others, trains on its data_shard() of every step,
// averages gradients with them before every update and stops with them; rank 0 alone writes the
// run's files and logs; a rank that fails or vanishes ends every rank with an Error.
LoopResult run_training(TrainOptions options, const TrainControl& control, const Runtime& runtime,
                        const Logger& log, const ObjectiveFactory& make_objective,
                        std::unique_ptr<TrainingObjective>* objective_out);

}  // namespace bottleneck

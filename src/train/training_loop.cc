#include "train/training_loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <sstream>

#include <unistd.h>

#include <torch/torch.h>

#include "distributed/data_parallel.h"
#include "distributed/process_group.h"
#include "train/memory_estimate.h"
#include "train/metrics_log.h"
#include "train/objective.h"
#include "train/run_directory.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/file_jobs.h"
#include "util/progress.h"
#include "util/text_format.h"

namespace fs = std::filesystem;

namespace bottleneck {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void set_learning_rate(torch::optim::Adam& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
}

bool parameters_finite(torch::nn::Module& module) {
  for (const auto& p : module.parameters())
    if (!torch::isfinite(p).all().item<bool>()) return false;
  return true;
}

// What makes a run this run: a checkpoint whose recorded config differs in any of these is
// another run's (its batches, noise or network would not continue this one). The schedule,
// validation and logging fields may change on resume.
void require_same_run(const TrainOptions& now, const std::string& checkpoint_config, const std::string& checkpoint) {
  if (checkpoint_config.empty()) return;  // written before checkpoints recorded their config
  TrainOptions then;
  try {
    then = train_options_from_json(checkpoint_config, TrainOptions{}, checkpoint);
  } catch (const std::exception&) {
    return;  // a config of an older version (other fields): its weights loaded, so resume
  }
  auto folder = [](const std::string& p) { return p.empty() ? p : resolved(p).string(); };
  std::ostringstream lambdas_now, lambdas_then;
  for (double l : now.lambdas) lambdas_now << l << " ";
  for (double l : then.lambdas) lambdas_then << l << " ";
  const struct {
    const char* field;
    std::string now, then;
  } identity[] = {
      {"task", now.task, then.task},
      {"network", to_json(now.arch), to_json(then.arch)},
      {"training data", folder(now.data_dir), folder(then.data_dir)},
      {"noisy partners", folder(now.pairs_dir), folder(then.pairs_dir)},
      {"noise", now.pairs_dir.empty() ? now.noise : "", then.pairs_dir.empty() ? then.noise : ""},
      {"seed", std::to_string(now.seed), std::to_string(then.seed)},
      {"process count", std::to_string(now.processes), std::to_string(then.processes)},
      {"patch", std::to_string(now.patches.patch), std::to_string(then.patches.patch)},
      {"batch", std::to_string(now.patches.batch), std::to_string(then.patches.batch)},
      {"augment", std::to_string(now.patches.augment), std::to_string(then.patches.augment)},
      {"resize", std::to_string(now.resize), std::to_string(then.resize)},
      {"loss", now.loss, then.loss},
      {"precision", now.precision, then.precision},
      {"lambdas", lambdas_now.str(), lambdas_then.str()},
      {"codec network",
       std::to_string(now.codec_n) + "/" + std::to_string(now.codec_m) + "/" + now.codec_activation + "/" + now.codec_prior,
       std::to_string(then.codec_n) + "/" + std::to_string(then.codec_m) + "/" + then.codec_activation + "/" +
           then.codec_prior},
  };
  for (const auto& f : identity)
    if (f.now != f.then)
      throw Error(ErrorKind::kInvalidData, checkpoint,
                  std::string("belongs to another run: its ") + f.field + " is \"" + f.then + "\", the run's config says \"" +
                      f.now + "\"; resume the run it belongs to, or start a new run (--init to start from its weights)");
}

// Seconds spent in collectives (the stop vote, the gradient all-reduce): the cost of training
// on several processes, logged at the end and measured by scripts/bench/distributed.sh.
class CommunicationClock {
 public:
  template <typename F>
  auto time(F&& f) {
    const auto start = std::chrono::steady_clock::now();
    struct Add {
      double& total;
      std::chrono::steady_clock::time_point start;
      ~Add() { total += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }
    } add{seconds_, start};
    return f();
  }
  double seconds() const { return seconds_; }

 private:
  double seconds_ = 0;
};

// Rank 0's last.ckpt, through the process group, loaded by every rank: the run directory may
// exist on rank 0's machine only. The others load it from a private temporary file, since an
// objective loads checkpoints from paths.
LoopState load_checkpoint_everywhere(TrainingObjective& task, torch::optim::Optimizer& optimizer, ProcessGroup& group,
                                     const std::string& last_path) {
  const bool root = group.rank() == 0;
  const std::string bytes = group.broadcast_bytes(root ? read_file(last_path) : std::string(),
                                                  "sending rank 0's " + last_path + " to resume from");
  if (root) return task.load_checkpoint(last_path, &optimizer);
  const std::string copy = (fs::temp_directory_path() / ("bottleneck-resume-" + std::to_string(::getpid()) + ".ckpt")).string();
  write_file_atomically(copy, bytes);
  struct Remove {
    std::string path;
    ~Remove() {
      std::error_code ec;
      fs::remove(path, ec);
    }
  } remove{copy};
  return task.load_checkpoint(copy, &optimizer);
}

}  // namespace

LoopResult run_training(TrainOptions options, const TrainControl& control, const Runtime& runtime,
                        const Logger& caller_log, const ObjectiveFactory& make_objective,
                        std::unique_ptr<TrainingObjective>* objective_out) {
  validate(options);
  // Before anything exists: a step that cannot fit would otherwise meet the OOM killer later.
  refuse_training_that_cannot_fit(options, available_memory_bytes());
  // Data-parallel: join the other ranks first, so that a rank that cannot be reached ends the
  // run before anything is written. Rank 0 alone logs, shows progress and writes the run's
  // files; the others warn and fail only.
  std::unique_ptr<ProcessGroup> group;
  if (control.distributed.enabled()) group = ProcessGroup::join(control.distributed, runtime.device, caller_log);
  const int ranks = group ? group->size() : 1;
  const bool writer = !group || group->rank() == 0;
  const Logger quiet(LogLevel::kQuiet);
  const Logger& log = writer ? caller_log : quiet;
  options.processes = ranks;
  CommunicationClock communication;
  RunDirectory::Options run_options;
  run_options.dir = options.out_dir;
  run_options.resume = control.resume;
  run_options.inputs = {{"training folder", options.data_dir},
                        {"folder of noisy partners", options.pairs_dir},
                        {"validation folder", options.val_dir},
                        {"folder of noisy validation partners", options.val_pairs_dir}};
  run_options.subfolders = {"samples"};
  run_options.writer = writer;
  const RunDirectory run(run_options, log);
  const std::string last_path = run.path("last.ckpt");

  std::unique_ptr<TrainingObjective> objective = make_objective(run);
  TrainingObjective& task = *objective;
  const DataShard shard{group ? group->rank() : 0, ranks};
  task.set_data_shard(shard);
  // Patches per step, over all ranks.
  const int64_t step_patches = static_cast<int64_t>(options.patches.batch) * ranks;
  if (options.epochs > 0) {
    const double patch_pixels = static_cast<double>(step_patches) * options.patches.patch * options.patches.patch;
    options.iterations =
        std::max<int64_t>(1, static_cast<int64_t>(std::ceil(options.epochs * task.training_pixels() / patch_pixels)));
    log.info(options.epochs, " epochs = ", options.iterations, " iterations");
  }
  torch::optim::Adam optimizer(task.module().parameters(), torch::optim::AdamOptions(options.lr));

  std::vector<std::string> columns = {"iteration", "lr", "loss"};
  const std::vector<std::string> step_columns = task.step_columns(), val_columns = task.validation_columns();
  columns.insert(columns.end(), step_columns.begin(), step_columns.end());
  columns.insert(columns.end(), val_columns.begin(), val_columns.end());
  columns.insert(columns.end(), {"patches_per_s", "elapsed_s"});
  MetricsLog metrics(run.path("metrics.csv"), columns);

  LoopState state;
  state.best = kNaN;
  if (control.resume) {
    state = group ? load_checkpoint_everywhere(task, optimizer, *group, last_path)
                  : task.load_checkpoint(last_path, &optimizer);
    require_same_run(options, state.config_json, last_path);
    if (writer) {
      const MetricsLog::Loaded loaded = metrics.load_until(state.iteration);
      if (loaded.damaged > 0)
        log.warn(run.path("metrics.csv"), ": ", loaded.damaged,
                 " damaged line(s) left out; the file as found is kept as ", loaded.backup);
    }
    log.info("resuming ", run.dir(), " at iteration ", state.iteration, " of ", options.iterations);
  }
  state.config_json = to_json(options);
  task.prepare_for_training();
  run.write_text("config.json", state.config_json + "\n");
  // Every rank starts from rank 0's weights (whatever each drew or loaded), and from here on
  // applies the same averaged gradients, so they stay equal (checked at every checkpoint).
  std::unique_ptr<GradientReducer> reducer;
  if (group) {
    communication.time([&] { broadcast_module(*group, task.module(), "sending rank 0's weights"); return 0; });
    std::vector<torch::Tensor> trained;
    for (const torch::Tensor& p : task.module().parameters())
      if (p.requires_grad()) trained.push_back(p);
    reducer = std::make_unique<GradientReducer>(*group, trained);
  }
  log.info("training ", task.describe(), ", ", runtime.device.str(), ", ", runtime.threads, " threads",
           group ? ", " + std::to_string(ranks) + " processes of batch " + std::to_string(options.patches.batch) +
                       " (" + std::to_string(step_patches) + " patches per step, " +
                       std::to_string(reducer->bucket_count()) + " gradient bucket(s))"
                 : std::string());

  const double elapsed_before = std::isfinite(metrics.last("elapsed_s")) ? metrics.last("elapsed_s") : 0;
  const auto start = std::chrono::steady_clock::now();
  auto seconds_since_start = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  BatchLoader loader([&](int64_t index) { return task.make_batch(index); }, state.iteration, options.loader_workers,
                     4);
  ProgressBar::Options progress_options;
  progress_options.label = task.progress_label();
  progress_options.tty = control.progress_tty;
  progress_options.enabled = log.enabled(LogLevel::kInfo);
  ProgressBar progress(options.iterations, state.iteration, progress_options, std::cerr);

  // A step can turn the weights non-finite while its own loss was still finite: check before
  // every write so a checkpoint on disk is always a good one.
  auto save_last = [&] {
    if (!parameters_finite(task.module()))
      throw Error(run.dir(), "the weights became non-finite at iteration " + std::to_string(state.iteration) +
                                 " (learning rate too high?); the last good state is " + last_path);
    // Rank 0's checkpoint stands for every rank: make sure it does.
    if (group) {
      const uint64_t fingerprint = communication.time([&] {
        return require_identical_weights(*group, task.module(), "at iteration " + std::to_string(state.iteration));
      });
      std::ostringstream hex;
      hex << std::hex << fingerprint;
      log.debug("weights identical on all ", ranks, " ranks at iteration ", state.iteration, " (fingerprint ",
                hex.str(), ")");
    }
    run.write("last.ckpt", [&](const std::string& p) { task.save_checkpoint(p, &optimizer, state); });
  };
  auto save_best = [&] {
    run.write("best.ckpt", [&](const std::string& p) { task.save_checkpoint(p, nullptr, state); });
  };

  task.module().train();
  int64_t steps_this_run = 0;
  bool stopped_early = false;
  std::string progress_text;
  while (state.iteration < options.iterations) {
    bool stop = (control.stop && control.stop->load()) ||
                (control.stop_after > 0 && steps_this_run >= control.stop_after) ||
                (control.time_limit_s > 0 && seconds_since_start() >= control.time_limit_s);
    // Ranks stop together, at the same step, whichever of them was asked to.
    if (group)
      stop = communication.time(
          [&] { return group->any(stop, "the stop vote before iteration " + std::to_string(state.iteration + 1)); });
    if (stop) {
      stopped_early = true;
      break;
    }
    const TrainBatch batch = loader.next();
    if (!(batch.shard == shard))
      throw Error("the objective's batch " + std::to_string(batch.index) + " is shard " +
                  std::to_string(batch.shard.index) + " of " + std::to_string(batch.shard.count) + ", not " +
                  std::to_string(shard.index) + " of " + std::to_string(shard.count) +
                  " (its make_batch must pass data_shard() to PatchDataset::batch; internal)");
    set_learning_rate(optimizer, learning_rate(options, state.iteration));
    // One step = forward, loss, backward, update. Data-parallel training all-reduces the
    // gradients between backward() and the update; nothing else in the loop changes.
    const torch::Tensor loss = task.loss(batch, state.iteration);
    double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value))
      throw Error(run.dir(), "training loss became " + std::to_string(loss_value) + " at iteration " +
                                 std::to_string(state.iteration + 1) +
                                 " (learning rate too high?); the last good state is " + last_path);
    optimizer.zero_grad();
    loss.backward();
    // Before the objective's hook, so that gradient clipping sees the whole batch's gradient.
    if (reducer)
      loss_value = communication.time([&] {
        return reducer->average({loss_value}, "the gradient all-reduce of iteration " + std::to_string(state.iteration + 1))[0];
      });
    task.before_update();
    optimizer.step();
    ++state.iteration;
    ++steps_this_run;
    state.loss_sum += loss_value;
    ++state.loss_count;
    const int64_t it = state.iteration;

    const double patches_per_s = progress.rate() * static_cast<double>(step_patches);
    // Rank 0 validates and logs alone; the others wait for it at the next step's vote.
    const bool validate_now =
        writer && task.can_validate() && (it % options.val_every == 0 || it == options.iterations);
    if (writer && (it % options.log_every == 0 || validate_now || it == options.iterations)) {
      std::vector<double> row = {static_cast<double>(it), learning_rate(options, it - 1),
                                 state.loss_sum / static_cast<double>(state.loss_count)};
      state.loss_sum = 0;
      state.loss_count = 0;
      const std::vector<double> figures = task.take_step_figures();
      row.insert(row.end(), figures.begin(), figures.end());
      row.resize(3 + step_columns.size(), kNaN);
      if (validate_now) {
        const ValidationOutcome v = task.validate(run, it);
        row.insert(row.end(), v.figures.begin(), v.figures.end());
        const bool better = task.lower_is_better() ? !(v.figure >= state.best) : !(v.figure <= state.best);
        if (better && std::isfinite(v.figure)) {
          state.best = v.figure;
          save_best();
        }
        // With a live progress line the latest validation is on it already.
        if (!progress_options.tty || !progress_options.enabled)
          log.info("validation at ", it, ": ", v.summary, ", best ", task.figure_text(state.best));
      }
      row.resize(3 + step_columns.size() + val_columns.size(), kNaN);
      row.push_back(patches_per_s);
      row.push_back(elapsed_before + seconds_since_start());
      metrics.add(row);
      run.write("metrics.csv", [&](const std::string&) { metrics.write(); });
      if (validate_now) run.write("curves.png", [&](const std::string& p) { task.write_curves(p, metrics); });
    }
    if (it % options.checkpoint_every == 0 || it == options.iterations) save_last();

    progress_text = "loss " + significant(loss_value, 4) + " | " + fixed(patches_per_s, 1) + " img/s" +
                    task.progress_suffix();
    progress.update(it, progress_text);
  }
  // Always leave `last` at the step we stopped on, whatever the reason.
  save_last();
  std::error_code ec;
  if (!task.can_validate() && !fs::exists(run.path("best.ckpt"), ec)) save_best();
  const double seconds = seconds_since_start();
  progress.finish(progress_text + (stopped_early ? " | stopped" : " | done"));
  if (group && steps_this_run > 0)
    log.info("communication: ", fixed(1e3 * communication.seconds() / static_cast<double>(steps_this_run), 2),
             " ms per step, ", fixed(100 * communication.seconds() / std::max(seconds, 1e-9), 1),
             "% of the loop's time (", ranks, " processes, weights identical on all)");

  LoopResult result;
  result.iteration = state.iteration;
  result.finished = state.iteration >= options.iterations;
  result.best = state.best;
  result.seconds = seconds;
  result.patches_per_second = seconds > 0 ? static_cast<double>(steps_this_run * step_patches) / seconds : 0;
  result.communication_seconds = communication.seconds();
  result.processes = ranks;
  if (objective_out) *objective_out = std::move(objective);
  return result;
}

}  // namespace bottleneck

#pragma once

// The training options' fields by name, one list for every direction: a run's config.json
// (train_config.cc writes and reads it with these keys) and the train command's flags
// (cli/command_train.cc: the key with '-' for '_', so "val_every" is --val-every). Three fields
// have no flag of their key's name: augment (the flag is --no-augment), processes (set by the
// launcher, never a flag) and lambdas (a comma-separated list flag, parsed by the command).

#include "train/train_config.h"

namespace bottleneck {

// Calls v(key, field) for every field, in the order config.json lists them.
template <typename Visitor>
void visit_train_fields(TrainOptions& o, Visitor&& v) {
  v("data", o.data_dir);
  v("pairs", o.pairs_dir);
  v("val", o.val_dir);
  v("val_pairs", o.val_pairs_dir);
  v("init", o.init);
  v("out", o.out_dir);
  v("noise", o.noise);
  v("val_noise", o.val_noise);
  v("patch", o.patches.patch);
  v("batch", o.patches.batch);
  v("resize", o.resize);
  v("standardize", o.standardize);
  v("iters", o.iterations);
  v("epochs", o.epochs);
  v("lr", o.lr);
  v("lr_min", o.lr_min);
  v("schedule", o.schedule);
  v("step_size", o.step_size);
  v("step_gamma", o.step_gamma);
  v("loss", o.loss);
  v("precision", o.precision);
  v("augment", o.patches.augment);
  v("val_every", o.val_every);
  v("checkpoint_every", o.checkpoint_every);
  v("log_every", o.log_every);
  v("samples", o.samples);
  v("val_max_images", o.val_max_images);
  v("workers", o.loader_workers);
  v("max_pixels", o.max_pixels);
  v("seed", o.seed);
  v("processes", o.processes);
  v("task", o.task);
  v("lambdas", o.lambdas);
  v("codec_n", o.codec_n);
  v("codec_m", o.codec_m);
  v("codec_activation", o.codec_activation);
  v("codec_prior", o.codec_prior);
}

}  // namespace bottleneck

#pragma once

// `bottleneck train --task reconstruct`: the autoencoder of options.arch (a conv-ae, or any
// network with a sigmoid or linear head) learns to reproduce normal images, under MSE or L1,
// optionally from noisy copies (options.noise, a denoising autoencoder's regulariser; "none" by
// default). What it then fails to reproduce is what `score` calls anomalous, and its code is what
// `encode` writes. The third objective of train/training_loop (train/objective.h).
//
// Data (options.data_dir): a folder of normal images (recursive; gray or colour as the arch's
// channels), each resized to options.resize x options.resize when resize > 0 (the size the model
// then sees every image at: score and encode resize theirs the same way), else used at its own
// size; or Fashion-MNIST's training split, "fashion-mnist:DIR[?classes=0,3]" (DIR holding the IDX
// files, classes = the labels kept; default all). Batches are random options.patches crops (the
// whole image when the patch equals its size), a pure function of (seed, step).
//
// Validation (the best checkpoint's figure, PSNR of the reconstructions, higher is better):
// options.val_dir's images, prepared as the training images; for Fashion-MNIST without --val,
// the first val_max_images (default 1000) test images of the same classes.

#include <string>
#include <vector>

#include "runtime/runtime.h"
#include "train/train_config.h"
#include "train/trainer.h"
#include "util/log.h"

namespace bottleneck {

// "fashion-mnist:DIR?classes=0,3" read as {DIR, {0, 3}}; UsageError for a bad form.
struct FashionMnistSource {
  std::string dir;
  std::vector<int> classes;  // empty = all ten
};
bool is_fashion_mnist_source(const std::string& data);
FashionMnistSource parse_fashion_mnist_source(const std::string& data);

TrainResult train_reconstruct(const TrainOptions& options, const TrainControl& control, const Runtime& runtime,
                              const Logger& log);

}  // namespace bottleneck

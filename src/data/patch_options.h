#pragma once

namespace bottleneck {

// How training patches are cut: shared by the patch stream (dataset.h) and the run's options
// (train/train_config.h), which holds one of these instead of its own copies of the fields.
struct PatchOptions {
  int patch = 64;        // side of the square patches, pixels, >= 8
  int batch = 16;        // patches per batch (per step), >= 1
  bool augment = true;   // random flips and 90-degree rotations (the 8 dihedral transforms)
};

}  // namespace bottleneck

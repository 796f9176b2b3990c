#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/patch_options.h"
#include "nets/arch_spec.h"
#include "image/image_io.h"

namespace bottleneck {

// Everything that defines a training run. Written to RUN_DIR/config.json (and into every
// checkpoint) so a run can be repeated or resumed exactly; read back by --config and --resume.
struct TrainOptions {
  std::string task = "denoise";  // "denoise" (the autoencoder of `arch`, trainer.h) or "compress"
                                 // (the learned codec, codec/codec_trainer.h: `arch` then only
                                 // gives the image channels, noise options are unused) or
                                 // "reconstruct" (normal images -> themselves, for anomaly
                                 // scores and latents: anomaly/reconstruct_trainer.h)
  std::string data_dir;          // clean training images (folder, recursive); required
                                 // (reconstruct: or fashion-mnist:DIR[?classes=0,3])
  int resize = 0;                // reconstruct: images resized to resize x resize pixels for
                                 // training, scoring and encoding, 0..4096; 0 = their own size
  bool standardize = false;      // reconstruct: each image's own mean and spread taken out
                                 // before the network (anomaly_model.h's model_input), for
                                 // training, scoring and encoding alike
  std::string pairs_dir;         // real noisy partners of data_dir, matched by relative path;
                                 // empty = synthetic noise from `noise`
  std::string val_dir;           // full validation images; empty = no validation
  std::string val_pairs_dir;     // real noisy partners of val_dir, matched by relative path
                                 // (judge checkpoints on real noise); empty = val_noise
  std::string init;              // model file (checkpoint or export of the same network) whose
                                 // weights start the run (fine-tuning); empty = random init
  std::string out_dir;           // run directory (config, metrics, curves, samples, checkpoints)
  ArchSpec arch;                 // network; its channels are the images' channels (1 or 3)
  std::string noise = "gaussian:25";  // training noise (noise.h syntax); ranges = blind training
  std::string val_noise;         // validation noise; empty = same as `noise`
  PatchOptions patches;          // patch side (>= 8), patches per step (>= 1), augmentation
  int64_t iterations = 5000;     // total optimisation steps of the run, > 0
  double epochs = 0;             // if > 0, sets iterations so that the run's patches cover the
                                 // training pixels this many times: ceil(epochs x pixels /
                                 // (batch x patch^2)); resolved when the data is loaded
  double lr = 1e-3;              // Adam learning rate at the start, > 0
  double lr_min = 1e-5;          // cosine: final learning rate, 0 <= lr_min <= lr
  std::string schedule = "cosine";  // "cosine" (lr -> lr_min over the run), "step", "constant"
  int64_t step_size = 2000;      // step: multiply lr by step_gamma every step_size iterations
  double step_gamma = 0.5;       // step: factor, in (0, 1]
  std::string loss = "mse";      // "mse" or "l1"
  std::string precision = "fp32";  // "fp32", or "bf16": the layers compute in bfloat16 while the
                                 // weights and Adam stay float32 (about 2x the steps per second
                                 // on CPUs with AVX512-BF16)
  int64_t val_every = 500;       // validate (and write curves, samples, best) every N steps
  int64_t checkpoint_every = 500;  // write `last` every N steps (and at the end / on a signal)
  int64_t log_every = 50;        // append the running loss to metrics.csv every N steps
  int samples = 3;               // validation images shown in samples/, 0 = none
  int val_max_images = 0;        // validate on the first N images only; 0 = all
  int loader_workers = 1;        // background threads building batches
  int64_t max_pixels = kDefaultMaxPixels;  // training and validation images with more pixels
                                 // are skipped with a warning, refused from the header (bombs)
  uint64_t seed = 0;             // initialisation, patch sampling and noise all derive from it
  int processes = 1;             // processes training the run together (the launcher's
                                 // WORLD_SIZE, set by the loop, not a flag): a step's batch is
                                 // processes x patches.batch patches, so a resume with another
                                 // count would be another run's batches and is refused

  // compress only. One model is trained for every rate: each lambda (> 0) is one rate point of
  // the loss lambda x 255^2 x MSE + bpp, in increasing order. The default is the shipped model's
  // ladder: CompressAI's MSE qualities 1-7 and two rates below them (about 0.08 to 1.1 bpp on
  // Kodak, models/training/codec-ladder-trial/README).
  std::vector<double> lambdas = {0.00045, 0.0009, 0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932};
  int codec_n = 64;              // hidden channels of the codec's transforms, 1..4096
  int codec_m = 96;              // latent channels, 1..4096
  std::string codec_activation = "relu";  // "relu" or "gdn" (GDN / inverse GDN)
  std::string codec_prior = "step";       // "step" or "gained" (codec/codec_model.h, CodecSpec::prior);
                                          // a run config written before the field was "gained"
};

// Throws UsageError naming the first bad field.
void validate(const TrainOptions& options);

std::string to_json(const TrainOptions& options);
// Reads a config; fields not present keep the values already in `base` (so a config file can
// give only some options). Unknown keys are an error (a typo must not be silently ignored).
TrainOptions train_options_from_json(const std::string& json_text, TrainOptions base,
                                     const std::string& source_name);

}  // namespace bottleneck

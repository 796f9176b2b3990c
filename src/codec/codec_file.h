#pragma once

// The codec model file that ships (docs/formats.md, "Codec model files"): the trained weights,
// the frozen integer CDF tables the entropy coder codes with, the CodecSpec, the trained rates'
// lambdas and the model id that every .bnc file it writes carries. Made once from a codec
// checkpoint (`bottleneck export`), because the tables are built with floating point
// (codec/cdf.h): an encoder and a decoder on different machines agree only if both read the
// same frozen integers, never if each rebuilt them.

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "codec/codec_model.h"
#include "codec/container.h"
#include "codec/entropy_bottleneck.h"

namespace bottleneck {

// Identifies our codec model files among torch archives; bumped on incompatible changes.
inline constexpr const char* kCodecModelFormat = "bottleneck-codec-model";
// 1: "gained" priors, one CDF table per latent channel; 2: "step" priors, a table per channel
// and frozen step (CodecModelImpl::frozen_steps), step-major.
inline constexpr int64_t kCodecModelVersion = 2;
// ".bnm" (BottleNeck Model), beside ".bnc" for the compressed images; a torch archive, not a
// TorchScript module, so not ".pt". Free in shared-mime-info and Debian's mime.types.
inline constexpr char kCodecModelExtension[] = ".bnm";
// The shipped model's file name, looked up in shipped_model_dirs() (inference/shipped_models.h).
inline constexpr char kShippedCodecModelName[] = "codec.bnm";
// The probability the frozen tables leave to the escape, both tails together (CompressAI's).
inline constexpr double kCodecTailMass = 1e-9;

struct CodecModelInfo {
  std::string path;                 // the file it was read from ("" before writing)
  int64_t format_version = kCodecModelVersion;
  std::string project_version;      // bottleneck that wrote the file
  CodecSpec spec;
  std::vector<double> lambdas;      // one per trained rate, lowest rate first
  ModelId id{};                     // model_id(weights, tables), checked on load
  int64_t iteration = 0;            // training steps of the checkpoint it was made from
  double best_val_rd = 0;           // that checkpoint's best validation RD figure (NaN: none)
  std::string checkpoint_project_version;  // bottleneck that wrote that checkpoint
};

// A model ready to code: in eval mode on the CPU, its prior's medians the frozen ones.
struct LoadedCodec {
  CodecModelInfo info;
  CodecModel model{nullptr};
  FrozenPrior prior;  // a table per latent channel and frozen step; medians = model->prior->medians()
};

// The model id: FNV-1a (128 bits) over the spec's JSON, then every parameter and buffer in
// name order (name, NUL, rank and sizes as uint64, float32 values), then the serialised CDF
// tables, all little-endian. Not a cryptographic hash: it names a model, it does not defend one.
ModelId codec_model_id(const CodecModelImpl& model, const std::vector<CdfTable>& tables);

// Freezes `model`'s prior (kCodecTailMass; updates its medians), computes the id and writes
// the model file atomically, verified by loading it back. `meta` gives lambdas and provenance;
// its spec, id and path are filled from the model. Returns the info as written.
CodecModelInfo write_codec_model(const std::string& path, CodecModelImpl& model, CodecModelInfo meta);

// `bottleneck export` for a codec checkpoint. Refuses (UsageError) to write over the checkpoint.
struct CodecExportResult {
  CodecModelInfo info;
  int64_t parameters = 0;
  uint64_t bytes = 0;  // of the written file
};
CodecExportResult export_codec_model(const std::string& checkpoint, const std::string& output);

// Reads and checks a model file: Error(kCorrupt) for a damaged file or an id that does not
// match its contents, kUnsupported for a newer format, kInvalidData for another kind of file (a
// codec checkpoint is told how to export it).
LoadedCodec load_codec_model(const std::string& path);

// What a file is, by content; never throws (kNone for anything unreadable or foreign).
enum class CodecFileKind { kNone, kModel, kCheckpoint };
CodecFileKind codec_file_kind(const std::string& path);

// The shipped model's path; Error naming the folders searched when none has it.
std::string shipped_codec_model();

// The codec model files (*.bnm, any letter case) in `dirs`, each folder's kShippedCodecModelName
// first, then by name; folders that do not exist are skipped. Decompress looks among them for
// the model a file names (shipped_model_dirs() by default), so that files made with an earlier
// model still decode when its .bnm is kept beside the current one.
std::vector<std::string> codec_model_files(const std::vector<std::string>& dirs);

}  // namespace bottleneck

#include <cmath>
#include <iomanip>
#include <iostream>

#include "anomaly/anomaly_model.h"
#include "cli/command.h"
#include "codec/codec_file.h"
#include "codec/codec_trainer.h"
#include "codec/compressor.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "formats/exporter.h"
#include "formats/model_file.h"
#include "nets/models.h"
#include "util/text_format.h"

namespace bottleneck::cli {

namespace {

int print_compressed(const std::string& path) {
  const ParsedContainer f = read_compressed_file(path);
  const ContainerHeader& h = f.header;
  uint64_t payload = 0;
  for (const auto& p : f.payloads) payload += p.size();
  const uint64_t bytes = payload + 52 + 16 * h.streams.size();
  std::cout << "file:             " << path << "\n"
            << "kind:             compressed image (.bnc v" << f.format_version << ")\n"
            << "image:            " << h.width << " x " << h.height << ", " << (h.channels == 1 ? "gray" : "RGB") << ", "
            << int{h.bit_depth} << "-bit original" << (h.bit_depth == 16 ? " (coded at 8-bit precision)" : "") << "\n"
            << "quality:          " << std::setprecision(6) << h.quality << "\n"
            << "model id:         " << model_id_hex(h.model_id) << "\n";
  for (size_t i = 0; i < h.streams.size(); ++i)
    std::cout << "latent stream " << i << ":  " << h.streams[i].channels << " x " << h.streams[i].height << " x "
              << h.streams[i].width << ", " << f.payloads[i].size() << " bytes\n";
  std::cout << "size:             " << bytes << " bytes, " << std::fixed << std::setprecision(4)
            << 8.0 * static_cast<double>(bytes) / (static_cast<double>(h.width) * h.height) << " bpp\n";
  return 0;
}

int print_codec_model(const std::string& path) {
  const LoadedCodec codec = load_codec_model(path);
  const CodecModelInfo& info = codec.info;
  int64_t parameters = 0;
  for (const auto& p : codec.model->parameters()) parameters += p.numel();
  std::cout << "file:             " << path << "\n"
            << "kind:             codec model (" << kCodecModelFormat << " v" << info.format_version << ")\n"
            << "written by:       bottleneck " << info.project_version << "\n"
            << "model id:         " << model_id_hex(info.id) << "\n"
            << "codec:            " << to_json(info.spec) << "\n"
            << "parameters:       " << parameters << "\n"
            << "MACs per pixel:   " << std::fixed << std::setprecision(0) << codec.model->macs_per_pixel() << "\n"
            << "lambdas:          ";
  std::cout << std::defaultfloat;  // lambdas as trained (0.00045, not 0.0004)
  for (size_t i = 0; i < info.lambdas.size(); ++i) std::cout << (i ? ", " : "") << std::setprecision(6) << info.lambdas[i];
  std::cout << std::fixed << " (quality 1 .. 100)\n"
            << "iterations:       " << info.iteration << "\n"
            << "best val RD:      ";
  if (std::isfinite(info.best_val_rd)) std::cout << std::setprecision(4) << info.best_val_rd << "\n";
  else std::cout << "(not validated)\n";
  return 0;
}

int print_codec_checkpoint(const std::string& path) {
  const CodecCheckpointInfo info = read_codec_checkpoint_info(path);
  std::cout << "file:             " << path << "\n"
            << "kind:             codec training checkpoint (" << kCodecCheckpointFormat << ")\n"
            << "written by:       bottleneck " << info.project_version << "\n"
            << "codec:            " << to_json(info.spec) << "\n"
            << "iterations:       " << info.iteration << "\n"
            << "best val RD:      ";
  if (std::isfinite(info.best_val_rd)) std::cout << std::fixed << std::setprecision(4) << info.best_val_rd << "\n";
  else std::cout << "(not validated)\n";
  std::cout << "model file:       bottleneck export --checkpoint " << path << " --output codec" << kCodecModelExtension << "\n";
  return 0;
}

// A reconstruction model's calibration (`calibrate`), as score and eval will apply it.
void print_calibration(const std::string& path) {
  const AnomalyModel model = AnomalyModel::load(path);
  const Calibration& c = model.calibration();
  std::cout << "anomaly score:    ";
  if (!c.present) {
    std::cout << "(not calibrated: bottleneck calibrate --model " << path << " --normal DIR)\n";
    return;
  }
  std::cout << name_of(c.score) << " > " << significant(c.threshold, 6) << " is an anomaly (FPR " << significant(c.fpr, 3) << " asked on "
            << c.normal.count << " normal images of " << c.normal_dir << ")\n"
            << "normal scores:    mean " << significant(c.normal.mean, 4) << ", std " << significant(c.normal.std, 4)
            << ", median " << significant(c.normal.p50, 4) << ", p99 " << significant(c.normal.p99, 4) << "\n"
            << "latent Gaussian:  ";
  if (c.latent.present)
    std::cout << c.latent.dims << " numbers, from " << c.latent.count << " normal images (scores latent, coarse-latent)\n";
  else
    std::cout << "(none: the latent scores are unavailable)\n";
}

}  // namespace

Command info_command() {
  Command c;
  c.name = "info";
  c.summary = "describe a model file (checkpoint, exported TorchScript, codec model) or a compressed .bnc image";
  c.positional_help = "FILE";
  c.positionals = {"file"};
  c.add_options = [](cxxopts::Options& o) {
    o.add_options("Input")("file", "checkpoint (.ckpt), exported model (.pt), codec model (.bnm) or compressed image (.bnc)", cxxopts::value<std::string>());
  };
  c.run = [](const cxxopts::ParseResult& r, const Context&) {
    if (!r.count("file")) throw UsageError("info: give a model file");
    const std::string path = r["file"].as<std::string>();
    require_regular_file(path);  // sniffing a FIFO would wait for a writer forever
    if (is_compressed_file(path)) return print_compressed(path);
    const CodecFileKind codec = codec_file_kind(path);
    if (codec == CodecFileKind::kModel) return print_codec_model(path);
    if (codec == CodecFileKind::kCheckpoint) return print_codec_checkpoint(path);
    // The metadata does not depend on the device; the CPU keeps `info` usable on any machine.
    const std::unique_ptr<InferenceModel> model = load_model(path, c10::Device(c10::kCPU));
    const ModelInfo& info = model->info();
    const Autoencoder net = make_model(info.arch);
    const bool exported = info.file_kind == "torchscript";
    std::cout << "file:             " << info.path << "\n"
              << "kind:             "
              << (exported ? std::string("exported TorchScript model (") + kTorchScriptFormat
                           : std::string("training checkpoint (") + kCheckpointFormat)
              << " v" << info.format_version << ")\n"
              << "written by:       bottleneck " << info.project_version << "\n"
              << "arch:             " << to_json(info.arch) << "\n"
              << "parameters:       " << parameter_count(*net) << "\n"
              << "MACs per pixel:   " << std::fixed << std::setprecision(0) << net->macs_per_pixel() << "\n"
              << "receptive radius: " << model->receptive_radius() << " px\n"
              << "noise:            " << (info.noise.empty() ? "(unknown)" : info.noise) << "\n"
              << "training data:    " << (info.train_data.empty() ? "(unknown)" : info.train_data) << "\n"
              << "iterations:       " << info.iteration << "\n"
              << "best val PSNR:    ";
    if (std::isfinite(info.val_psnr)) {
      std::cout << std::setprecision(2) << info.val_psnr << " dB\n";
    } else {
      std::cout << "(not validated)\n";
    }
    if (info.arch.head != Head::kResidual) print_calibration(path);
    return 0;
  };
  return c;
}

}  // namespace bottleneck::cli

#include <cmath>
#include <iomanip>
#include <iostream>

#include "cli/command.h"
#include "util/error.h"
#include "formats/exporter.h"
#include "formats/model_file.h"
#include "nets/models.h"

namespace bottleneck::cli {

Command info_command() {
  Command c;
  c.name = "info";
  c.summary = "describe a model file (checkpoint or exported TorchScript): network, training, versions";
  c.positional_help = "FILE";
  c.positionals = {"file"};
  c.add_options = [](cxxopts::Options& o) {
    o.add_options("Input")("file", "checkpoint (.ckpt) or exported model (.pt)", cxxopts::value<std::string>());
  };
  c.run = [](const cxxopts::ParseResult& r, const Context&) {
    if (!r.count("file")) throw UsageError("info: give a model file");
    // The metadata does not depend on the device; the CPU keeps `info` usable on any machine.
    const std::unique_ptr<InferenceModel> model = load_model(r["file"].as<std::string>(), c10::Device(c10::kCPU));
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
    return 0;
  };
  return c;
}

}  // namespace bottleneck::cli

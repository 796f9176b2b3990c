#include <cmath>
#include <iomanip>
#include <sstream>

#include "cli/command.h"
#include "codec/codec_file.h"
#include "formats/exporter.h"
#include "util/text_format.h"

namespace bottleneck::cli {

Command export_command() {
  Command c;
  c.name = "export";
  c.summary = "write a checkpoint as a TorchScript model for Python or C++ (torch.jit.load), or a codec checkpoint "
              "as a codec model file (.bnm) for compress/decompress";
  c.add_options = [](cxxopts::Options& o) {
    o.add_options("Export")
        ("checkpoint", "training checkpoint to export (e.g. RUN_DIR/best.ckpt)", cxxopts::value<std::string>())
        ("output", "TorchScript file to write (e.g. model.pt); its weights are for the CPU, which "
                   "loads everywhere, unless the global --device is given (e.g. --device cuda)",
         cxxopts::value<std::string>());
  };
  c.run = [](const cxxopts::ParseResult& r, const Context& ctx) {
    // A codec checkpoint (train --task compress) becomes the model file compress and decompress
    // read: its own format, told apart by content.
    const std::string checkpoint = get_or<std::string>(r, "checkpoint", "");
    if (codec_file_kind(checkpoint) == CodecFileKind::kCheckpoint) {
      const CodecExportResult result = export_codec_model(checkpoint, get_or<std::string>(r, "output", ""));
      ctx.log.info("wrote ", result.info.path, ": codec model ", model_id_hex(result.info.id), ", N=",
                   result.info.spec.n, " M=", result.info.spec.m, " ", result.info.spec.activation, ", ",
                   result.info.spec.rates, " rates, ", result.parameters, " parameters, ",
                   fixed(static_cast<double>(result.bytes) / 1e6, 2), " MB, trained ", result.info.iteration,
                   " iterations");
      return 0;
    }
    ExportOptions options;
    options.checkpoint = checkpoint;
    options.output = get_or<std::string>(r, "output", "");
    // The global --device defaults to auto, which would tie the file to a GPU merely because the
    // exporting machine has one: only an explicit --device moves the weights off the CPU.
    if (r.count("device")) options.device = ctx.runtime.device;
    const ExportResult result = export_model(options);
    const ModelInfo& info = result.info;
    std::ostringstream psnr;
    if (std::isfinite(info.val_psnr)) psnr << ", best val PSNR " << std::fixed << std::setprecision(2) << info.val_psnr << " dB";
    ctx.log.info("wrote ", options.output, ": ", name_of(info.arch.kind), " ", info.arch.in_channels, "->",
                 info.arch.out_channels, " channels, ", result.parameters, " parameters on ",
                 options.device.str(), ", trained ", info.iteration, " iterations on ",
                 info.noise.empty() ? "?" : info.noise, psnr.str(),
                 "; load it with torch.jit.load(\"", options.output, "\")");
    return 0;
  };
  return c;
}

}  // namespace bottleneck::cli

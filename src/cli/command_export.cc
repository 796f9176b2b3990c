#include <cmath>
#include <iomanip>
#include <sstream>

#include "cli/command.h"
#include "formats/exporter.h"

namespace bottleneck::cli {

Command export_command() {
  Command c;
  c.name = "export";
  c.summary = "write a checkpoint as a TorchScript model for Python or C++ (torch.jit.load)";
  c.add_options = [](cxxopts::Options& o) {
    o.add_options("Export")
        ("checkpoint", "training checkpoint to export (e.g. RUN_DIR/best.ckpt)", cxxopts::value<std::string>())
        ("output", "TorchScript file to write (e.g. model.pt); its weights are for the CPU, which "
                   "loads everywhere, unless the global --device is given (e.g. --device cuda)",
         cxxopts::value<std::string>());
  };
  c.run = [](const cxxopts::ParseResult& r, const Context& ctx) {
    ExportOptions options;
    options.checkpoint = get_or<std::string>(r, "checkpoint", "");
    options.output = get_or<std::string>(r, "output", "");
    // The global --device defaults to auto, which would tie the file to a GPU merely because the
    // exporting machine has one: only an explicit --device moves the weights off the CPU.
    if (r.count("device")) options.device = ctx.runtime.device;
    const ExportResult result = export_model(options);
    const ModelInfo& info = result.info;
    std::ostringstream psnr;
    if (std::isfinite(info.val_psnr)) psnr << ", best val PSNR " << std::fixed << std::setprecision(2) << info.val_psnr << " dB";
    ctx.log.info("wrote ", options.output, ": ", info.arch.kind, " ", info.arch.in_channels, "->",
                 info.arch.out_channels, " channels, ", result.parameters, " parameters on ",
                 options.device.str(), ", trained ", info.iteration, " iterations on ",
                 info.noise.empty() ? "?" : info.noise, psnr.str(),
                 "; load it with torch.jit.load(\"", options.output, "\")");
    return 0;
  };
  return c;
}

}  // namespace bottleneck::cli

#include <iomanip>
#include <iostream>

#include "cli/arch_options.h"
#include "cli/command.h"
#include "nets/models.h"

namespace bottleneck::cli {

Command arch_command() {
  Command c;
  c.name = "arch";
  c.summary = "describe a network: its spec (JSON), parameters and FLOPs per pixel";
  c.add_options = [](cxxopts::Options& o) {
    add_arch_options(o, "unet-m");
    o.add_options("Output")("json", "print only the ArchSpec JSON");
  };
  c.run = [](const cxxopts::ParseResult& r, const Context&) {
    const ArchSpec spec = arch_from_options(r);
    if (r.count("json")) {
      std::cout << to_json(spec) << "\n";
      return 0;
    }
    const Autoencoder model = make_model(spec);
    std::cout << to_json(spec) << "\n"
              << "parameters:      " << parameter_count(*model) << "\n"
              << "MACs per pixel:  " << std::fixed << std::setprecision(0) << model->macs_per_pixel() << "\n"
              << "FLOPs per pixel: " << 2 * model->macs_per_pixel() << "\n"
              << "size multiple:   " << spec.size_multiple() << " (inputs are padded to it)\n";
    return 0;
  };
  return c;
}

}  // namespace bottleneck::cli

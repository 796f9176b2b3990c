// libFuzzer target: the text parsers that read what model files and runs say about themselves.
// The first byte picks the parser, the rest is its input:
//   0 export metadata (bottleneck.json in a TorchScript file)   1 checkpoint info record
//   2 ArchSpec JSON   3 training config (config.json, --config)   4 noise spec (--noise)
// Each must return or throw Error; any other exception escaping is a bug (a contract break the
// CLI would only report as a bare library message).
#include <cstddef>
#include <cstdint>
#include <string>

#include "nets/arch_spec.h"
#include "formats/checkpoint.h"
#include "util/error.h"
#include "formats/exporter.h"
#include "data/noise.h"
#include "train/train_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 5) {
      case 0: bottleneck::parse_export_metadata("fuzz", text); break;
      case 1: bottleneck::parse_checkpoint_info("fuzz", text); break;
      case 2: bottleneck::arch_spec_from_json(text); break;
      case 3: bottleneck::validate(bottleneck::train_options_from_json(text, bottleneck::TrainOptions(), "fuzz")); break;
      case 4: bottleneck::parse_noise_list(text); break;
    }
  } catch (const bottleneck::Error&) {
  }
  return 0;
}

// libFuzzer target: load_model, the loader of checkpoints and exported TorchScript files behind
// info, export, denoise and eval. LibTorch's zip reader and unpickler are not instrumented, so
// the fuzzer mostly mutates blindly there; what it checks is that every input ends in a model
// or an Error, never a crash. forward() is not run: a TorchScript file is code (see README,
// Safety), and running hostile code is out of scope for a loader.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "util/error.h"
#include "formats/model_file.h"

namespace {
// One scratch file per fuzzing process; torch::jit::load reads from a path.
const std::string& scratch_path() {
  static const std::string path = [] {
    char name[] = "/tmp/bottleneck-fuzz-model-XXXXXX";
    const int fd = mkstemp(name);
    if (fd >= 0) close(fd);
    return std::string(name);
  }();
  return path;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = scratch_path();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    auto model = bottleneck::load_model(path, c10::Device(c10::kCPU), [] {
      // No probe: the fuzzer is here to see LibTorch's crashes, which the probe would hide.
      bottleneck::LoadOptions o;
      o.probe = false;
      return o;
    }());
    (void)model->receptive_radius();
  } catch (const bottleneck::Error&) {
  }
  return 0;
}

// libFuzzer target: the image decoder behind every command that reads images (load_image).
// Any input must give an image or an Error; a crash, a sanitizer report or an allocation over
// the fuzzer's memory limit is a bug. The pixel limit is lowered so a legitimately large image
// in the corpus does not look like a leak to the fuzzer.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "util/error.h"
#include "image/image_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    bottleneck::decode_image("fuzz", std::vector<unsigned char>(data, data + size), 4 << 20);
  } catch (const bottleneck::Error&) {
  }
  return 0;
}

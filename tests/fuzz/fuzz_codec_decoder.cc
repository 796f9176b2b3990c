// libFuzzer target: the learned codec's decoder with a real model behind it (decompress_image:
// container, model id, quality -> frozen step, latent shape checks, rANS under the model's
// tables, synthesis, cropping to the header's size). fuzz_codec_container covers the readers
// alone; this one reaches what only a model has. The model is a tiny random "step" codec
// (N=4, M=6, 3 rates) written and loaded through the model file, so its tables and id are the
// real kind. The first byte picks what the rest is:
//   0 a .bnc file as it is (the fuzzer must also forge its CRC32s to get far)
//   1 header fields and payload bytes of a file this target wraps with valid CRC32s and the
//     model's id: every damaged payload, size, depth, quality and latent shape reaches the decoder
//   2 a small image and a quality: compressed, then decompressed, which must give the encoder's
//     own decoded image exactly (one process, one machine)
// Damaged input must throw Error (one line, naming the file) and nothing else; a decoded image
// must have the header's size and channels; a broken round trip traps.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "codec/codec_file.h"
#include "codec/compressor.h"
#include "codec/container.h"
#include "util/error.h"

using namespace bottleneck;

namespace {

// Decoding cost grows with the image: 64 x 64 pixels keep the target near 10^3 runs a second
// and reach every shape check (the latent is 4 x 4 at most).
constexpr uint32_t kMaxSide = 64;

LoadedCodec& codec() {
  static LoadedCodec loaded = [] {
    torch::set_num_threads(1);
    torch::manual_seed(7);
    CodecSpec spec;
    spec.n = 4;
    spec.m = 6;
    spec.activation = "gdn";
    spec.rates = 3;
    spec.prior = "step";
    const std::vector<double> lambdas = {0.002, 0.01, 0.05};
    CodecModel model(spec, lambdas);
    // Gains well above 1 spread the latents over many symbols, so payloads are not all zeros.
    {
      torch::NoGradGuard no_grad;
      for (auto& p : model->named_parameters())
        if (p.key() == "gain") p.value().mul_(8);
    }
    CodecModelInfo meta;
    meta.lambdas = lambdas;
    meta.best_val_rd = std::nan("");
    meta.checkpoint_project_version = "fuzz";
    char path[] = "/tmp/fuzz-codec-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) std::abort();
    close(fd);
    const std::string file = std::string(path) + ".bnm";
    write_codec_model(file, *model, meta);
    LoadedCodec c = load_codec_model(file);
    std::remove(file.c_str());
    std::remove(path);
    return c;
  }();
  return loaded;
}

struct Reader {
  const uint8_t* data;
  size_t size;
  uint8_t byte() {
    if (size == 0) return 0;
    --size;
    return *data++;
  }
  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{byte()} << (8 * i);
    return v;
  }
};

void check_decoded(const DecompressedImage& out) {
  const ContainerHeader& h = out.header;
  if (out.image.cols != static_cast<int>(h.width) || out.image.rows != static_cast<int>(h.height) ||
      out.image.channels() != h.channels || out.image.depth() != (h.bit_depth == 16 ? CV_16U : CV_8U))
    __builtin_trap();
}

void decode(const std::vector<uint8_t>& bytes) {
  // Only small images: a valid header of 2^18 x 2^18 pixels is a legitimate (huge) file.
  const ParsedContainer parsed = read_container(bytes.data(), bytes.size(), "fuzz.bnc");
  if (parsed.header.width > kMaxSide || parsed.header.height > kMaxSide) return;
  try {
    check_decoded(decompress_image(codec(), bytes.data(), bytes.size(), "fuzz.bnc"));
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.find('\n') != std::string::npos || what.find("fuzz.bnc") == std::string::npos) __builtin_trap();
    throw;
  }
}

void wrapped(Reader in) {
  ContainerHeader h;
  h.width = 1 + in.byte() % kMaxSide;
  h.height = 1 + in.byte() % kMaxSide;
  const uint8_t flags = in.byte();
  h.channels = flags & 1 ? 3 : 1;
  h.bit_depth = flags & 2 ? 16 : 8;
  // Any float bits, or a quality in range (most inputs should get past the range check).
  if (flags & 4) {
    const uint32_t bits = in.u32();
    std::memcpy(&h.quality, &bits, sizeof bits);
  } else {
    h.quality = 1 + static_cast<float>(in.byte()) * 99.0f / 255.0f;
  }
  h.model_id = codec().info.id;
  if (flags & 8) h.model_id[in.byte() % 16] ^= static_cast<uint8_t>(1 + in.byte() % 255);  // another model
  const uint32_t m = static_cast<uint32_t>(codec().model->spec().m);
  LatentShape s{m, (h.height + 15) / 16, (h.width + 15) / 16};
  if (flags & 16) s = {1 + in.byte() % (2 * m), 1 + in.byte() % 8u, 1 + in.byte() % 8u};  // a shape it cannot have
  h.streams.push_back(s);
  std::vector<std::vector<uint8_t>> payloads{std::vector<uint8_t>(in.data, in.data + in.size)};
  if (flags & 32) {  // a second stream the factorized model does not have
    h.streams.push_back(s);
    payloads.push_back({});
  }
  if (!std::isfinite(h.quality) || h.quality < 0) h.quality = 0;  // the container refuses to write them
  decode(write_container(h, payloads));
}

void round_trip(Reader in) {
  const int height = 1 + in.byte() % 32, width = 1 + in.byte() % 32;
  const int channels = in.byte() & 1 ? 3 : 1;
  const double quality = 1 + static_cast<double>(in.byte()) * 99.0 / 255.0;
  cv::Mat image(height, width, CV_8UC(channels));
  for (size_t i = 0; i < image.total() * channels; ++i) image.data[i] = in.byte();
  CodecTarget target;
  target.quality = quality;
  const CompressedImage z = compress_image(codec(), image, target);
  const DecompressedImage d = decompress_image(codec(), z.bytes.data(), z.bytes.size(), "fuzz.bnc");
  check_decoded(d);
  if (cv::norm(d.image, z.decoded, cv::NORM_INF) != 0) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Reader in{data + 1, size - 1};
  try {
    switch (data[0] % 3) {
      case 0: decode(std::vector<uint8_t>(in.data, in.data + in.size)); break;
      case 1: wrapped(in); break;
      case 2:
        try {
          round_trip(in);
        } catch (const Error&) {
          __builtin_trap();  // a valid image: nothing may fail
        }
        break;
    }
  } catch (const Error&) {
  }
  return 0;
}

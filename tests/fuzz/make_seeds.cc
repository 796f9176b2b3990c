// Writes the seed corpora of the fuzz targets (scripts/fuzz.sh runs it): small valid files of
// every kind each parser reads, generated rather than committed.
//   make_seeds OUT_DIR  ->  OUT_DIR/{image,model_file,metadata}/...
#include <filesystem>
#include <fstream>
#include <iostream>

#include <opencv2/imgcodecs.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include "formats/checkpoint.h"
#include "codec/cdf.h"
#include "codec/container.h"
#include "codec/rans.h"
#include "formats/exporter.h"
#include "image/image_io.h"
#include "nets/models.h"
#include "train/train_config.h"

namespace fs = std::filesystem;
using namespace bottleneck;

namespace {
void write(const fs::path& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

std::string bytes_of(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_seeds OUT_DIR\n";
    return 2;
  }
  const fs::path out = argv[1];
  for (const char* d : {"image", "model_file", "metadata", "codec_container", "codec_decoder"}) fs::create_directories(out / d);

  // Images: each format and layout the decoder meets, kept tiny so mutations stay cheap.
  cv::Mat gray(6, 5, CV_8UC1), colour(5, 7, CV_8UC3), rgba(4, 4, CV_8UC4), gray16(5, 4, CV_16UC1);
  cv::randu(gray, 0, 256), cv::randu(colour, 0, 256), cv::randu(rgba, 0, 256), cv::randu(gray16, 0, 65536);
  int n = 0;
  for (const auto& [ext, mat] : std::vector<std::pair<std::string, cv::Mat>>{
           {".png", gray}, {".png", colour}, {".png", rgba}, {".png", gray16}, {".jpg", gray}, {".jpg", colour},
           {".bmp", colour}, {".tif", gray16}, {".tif", rgba}, {".webp", colour}, {".pgm", gray}, {".ppm", colour}}) {
    std::vector<unsigned char> encoded;
    cv::imencode(ext, mat, encoded);
    write(out / "image" / ("seed" + std::to_string(n++) + ext), std::string(encoded.begin(), encoded.end()));
  }

  // Model files: a checkpoint and an export of a small U-Net and of a conv-ae.
  std::vector<std::string> metadata;
  for (const char* kind : {"unet", "conv-ae"}) {
    ArchSpec spec;
    spec.kind = parse_arch_kind(kind);
    spec.widths = {4, 8};
    if (spec.kind == ArchKind::kConvAE) spec.bottleneck_channels = 2, spec.head = Head::kSigmoid;
    CheckpointInfo info;
    info.arch = spec;
    info.noise = "gaussian:25";
    info.config_json = to_json(TrainOptions());
    Autoencoder model = make_model(spec);
    const fs::path ckpt = out / "model_file" / (std::string(kind) + ".ckpt");
    save_checkpoint(ckpt.string(), *model, nullptr, info);
    const std::string meta = export_metadata_json(info);
    to_torchscript(*model, torch::kCPU).save((out / "model_file" / (std::string(kind) + ".pt")).string(),
                                             {{kTorchScriptMetadataFile, meta}});
    metadata.push_back(std::string(1, '\0') + meta);
    metadata.push_back(std::string(1, '\2') + to_json(spec));
  }
  // The checkpoint info record as save_checkpoint writes it.
  const CheckpointInfo info = read_checkpoint_info((out / "model_file" / "unet.ckpt").string());
  std::string record = R"({"format":"bottleneck-checkpoint","format_version":1,"project_version":"0.1.0",)"
                       R"("iteration":3,"best_val_psnr":null,"last_val_psnr":30.5,"noise":"gaussian:25",)"
                       R"("loss_window_sum":0.5,"loss_window_count":2,"arch":)" + to_json(info.arch) +
                       R"(,"config":)" + info.config_json + "}";
  metadata.push_back(std::string(1, '\1') + record);
  metadata.push_back(std::string(1, '\3') + to_json(TrainOptions()));
  for (const char* spec : {"gaussian:25", "gaussian:0-55,poisson:30", "poisson-gaussian:30/5", "saltpepper:0.05",
                           "speckle:0.2", "camera", "camera:0.001-0.01/0.3"})
    metadata.push_back(std::string(1, '\4') + spec);
  for (size_t i = 0; i < metadata.size(); ++i) write(out / "metadata" / ("seed" + std::to_string(i)), metadata[i]);

  // Codec container: the first byte picks the fuzz target's mode (see fuzz_codec_container.cc):
  // 0 a file, 1 a container written around fuzzed payloads, 2 a round trip of values, 3 a bare
  // rANS stream, 4 serialised CDF tables.
  const CdfTable table = make_cdf_table({0.1, 0.8, 0.1}, -1);
  ContainerHeader header;
  header.width = 20, header.height = 10, header.channels = 3, header.quality = 2;
  header.streams = {{2, 2, 3}, {1, 1, 2}};
  std::vector<std::vector<uint8_t>> payloads;
  for (const LatentShape& shape : header.streams) {
    RansEncoder encoder;
    for (uint32_t i = 0; i < shape.channels * shape.height * shape.width; ++i) encoder.put(static_cast<int32_t>(i % 5) - 2, table);
    payloads.push_back(encoder.finish());
  }
  auto codec_seed = [&](const char* name, char mode, const std::vector<uint8_t>& b) {
    write(out / "codec_container" / name, std::string(1, mode) + std::string(b.begin(), b.end()));
  };
  codec_seed("container", 0, write_container(header, payloads));
  codec_seed("wrap", 1, std::vector<uint8_t>(64, 7));
  codec_seed("values", 2, std::vector<uint8_t>(64, 0xff));
  codec_seed("rans", 3, payloads[0]);
  codec_seed("tables", 4, serialize_cdf_tables({table, make_cdf_table({1}, 5)}));
  // Codec decoder (fuzz_codec_decoder.cc): 0 a file as it is, 1 fields and a payload it wraps
  // with valid checksums (here 20 x 10 RGB at quality byte 128, then the rANS bytes above), 2 a
  // round trip of a small image.
  auto decoder_seed = [&](const char* name, const std::string& b) { write(out / "codec_decoder" / name, b); };
  const std::vector<uint8_t> file = write_container(header, payloads);
  decoder_seed("file", std::string(1, '\0') + std::string(file.begin(), file.end()));
  decoder_seed("wrap", std::string("\x01\x13\x09\x01\x80", 5) + std::string(payloads[0].begin(), payloads[0].end()));
  decoder_seed("wrap16", std::string("\x01\x3f\x3f\x02\x40", 5) + std::string(96, '\x55'));
  std::string image = std::string("\x02\x0b\x0d\x01\x60", 5);
  for (int i = 0; i < 11 * 13 * 3; ++i) image += static_cast<char>((i * 37) & 0xff);
  decoder_seed("round_trip", image);
  std::cout << "seeds written to " << out.string() << "\n";
  return 0;
}

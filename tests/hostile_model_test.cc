// Hostile and broken model files through every command that reads one (info, export, denoise,
// eval): a one-line error naming the file and exit code 1, never a crash, nothing written.
#include <zlib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include "util/atomic_file.h"
#include "formats/checkpoint.h"
#include "util/error.h"
#include "formats/exporter.h"
#include "image/image_io.h"
#include "formats/model_file.h"
#include "nets/models.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using bottleneck::test::CommandResult;
using bottleneck::test::run_cli;
using bottleneck::test::run_command;
using bottleneck::test::TempDir;

namespace {

std::string le16(uint32_t v) { return {char(v), char(v >> 8)}; }
std::string le32(uint32_t v) { return {char(v), char(v >> 8), char(v >> 16), char(v >> 24)}; }

// A valid zip archive (stored entries) that is not a torch archive.
std::string plain_zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out, directory;
  for (const auto& [name, data] : entries) {
    const uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(data.data()), data.size()));
    const uint32_t offset = static_cast<uint32_t>(out.size());
    const std::string common = le16(20) + le16(0) + le16(0) + le16(0) + le16(0) + le32(crc) +
                               le32(static_cast<uint32_t>(data.size())) + le32(static_cast<uint32_t>(data.size())) +
                               le16(static_cast<uint32_t>(name.size())) + le16(0);
    out += le32(0x04034b50) + common + name + data;
    directory += le32(0x02014b50) + le16(20) + common + le16(0) + le16(0) + le16(0) + le32(0) + le32(offset) + name;
  }
  const uint32_t directory_offset = static_cast<uint32_t>(out.size());
  const uint32_t n = static_cast<uint32_t>(entries.size());
  return out + directory + le32(0x06054b50) + le16(0) + le16(0) + le16(n) + le16(n) +
         le32(static_cast<uint32_t>(directory.size())) + le32(directory_offset) + le16(0);
}

ArchSpec small_spec(int channels) {
  ArchSpec spec;
  spec.in_channels = spec.out_channels = channels;
  spec.widths = {8, 16};
  return spec;
}

CheckpointInfo info_for(const ArchSpec& spec) {
  CheckpointInfo info;
  info.arch = spec;
  info.noise = "gaussian:25";
  return info;
}

bool one_line(const std::string& output) {
  std::string out = output;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return !out.empty() && out.find('\n') == std::string::npos;
}

struct Hostile {
  std::string name;
  std::string reason;  // part of the one-line error
};

}  // namespace

TEST(HostileModel, EveryCommandRefusesBrokenAndForeignFilesWithOneLine) {
  TempDir dir;
  torch::manual_seed(1);
  Autoencoder gray = make_model(small_spec(1));
  save_checkpoint(dir / "good.ckpt", *gray, nullptr, info_for(small_spec(1)));
  const std::string ckpt = read_file(dir / "good.ckpt");
  const std::string exported_path = dir / "good.pt";
  to_torchscript(*gray, torch::kCPU).save(exported_path, {{kTorchScriptMetadataFile, export_metadata_json(info_for(small_spec(1)))}});
  const std::string exported = read_file(exported_path);

  std::vector<Hostile> files;
  auto add = [&](const std::string& name, const std::string& bytes, const std::string& reason) {
    write_file_atomically(dir / name, bytes);
    files.push_back({name, reason});
  };
  add("truncated.ckpt", ckpt.substr(0, ckpt.size() / 2), "corrupt or truncated");
  add("truncated.pt", exported.substr(0, exported.size() * 3 / 4), "corrupt or truncated");
  std::mt19937 rng(3);
  std::string noise(8192, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  add("random.pt", noise, "corrupt or truncated");
  add("empty.ckpt", "", "corrupt or truncated");
  add("plain.zip", plain_zip({{"readme.txt", "hello\n"}, {"data/x.bin", std::string(100, 'x')}}), "corrupt or truncated");
  add("image.pt", std::string("\x89PNG\r\n\x1a\n", 8) + std::string(100, '\0'), "corrupt or truncated");
  // Valid torch archives that are not ours.
  torch::jit::Module foreign("__torch__.Foreign");
  foreign.register_parameter("w", torch::ones({1}), false);
  foreign.define("def forward(self, x: Tensor) -> Tensor:\n    return x * self.w\n");
  foreign.save(dir / "foreign.pt");
  files.push_back({"foreign.pt", "not a Bottleneck"});
  torch::serialize::OutputArchive archive;
  archive.write("weights", torch::ones({3}));
  archive.save_to(dir / "foreign.ckpt");
  files.push_back({"foreign.ckpt", "not a Bottleneck"});
  // A checkpoint whose metadata says gray but whose weights are a colour network's.
  Autoencoder colour = make_model(small_spec(3));
  save_checkpoint(dir / "mismatch.ckpt", *colour, nullptr, info_for(small_spec(1)));
  files.push_back({"mismatch.ckpt", "weights do not match the network it describes"});

  test::write_synthetic_images(dir / "images", 2, 1, 24, 24, 1);
  for (const Hostile& f : files) {
    SCOPED_TRACE(f.name);
    const std::string path = dir / f.name;
    auto check = [&](const CommandResult& r, const char* command) {
      EXPECT_EQ(r.exit_code, 1) << command << ": " << r.output;
      EXPECT_TRUE(one_line(r.output)) << command << ": " << r.output;
      EXPECT_NE(r.output.find(path + ": "), std::string::npos) << command << ": " << r.output;
      EXPECT_NE(r.output.find(f.reason), std::string::npos) << command << ": " << r.output;
    };
    check(run_cli("info " + path), "info");
    check(run_cli("export --checkpoint " + path + " --output " + dir / "out.pt"), "export");
    EXPECT_FALSE(fs::exists(dir / "out.pt"));
    check(run_cli("denoise --quiet --model " + path + " " + dir / "images " + dir / "out"), "denoise");
    EXPECT_TRUE(!fs::exists(dir / "out") || fs::is_empty(dir / "out")) << "denoise wrote outputs";
    check(run_cli("eval --quiet --no-nlm --model " + path + " --clean " + dir / "images"), "eval");
  }
}

TEST(HostileModel, AnExportWhoseMetadataLiesAboutChannelsIsAnErrorNotACrash) {
  TempDir dir;
  torch::manual_seed(2);
  // A colour network exported with metadata that says gray. Refused when the model is loaded,
  // or else by each image's forward pass: either way a one-line reason naming the model, exit 1
  // and no output, never a LibTorch stack trace.
  Autoencoder colour = make_model(small_spec(3));
  const std::string path = dir / "liar.pt";
  to_torchscript(*colour, torch::kCPU).save(path, {{kTorchScriptMetadataFile, export_metadata_json(info_for(small_spec(1)))}});
  test::write_synthetic_images(dir / "images", 2, 1, 24, 24, 1);

  const CommandResult r = run_cli("denoise --quiet --model " + path + " " + dir / "images " + dir / "out");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(path + ": "), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("frame #"), std::string::npos) << r.output;
  const bool per_file = r.output.find("failed 2") != std::string::npos;
  EXPECT_TRUE(per_file || one_line(r.output)) << r.output;
  for (const char* name : {"img000.png", "img001.png"}) EXPECT_FALSE(fs::exists(dir / "out/" + name));
  const CommandResult e = run_cli("eval --quiet --no-nlm --model " + path + " --clean " + dir / "images");
  EXPECT_EQ(e.exit_code, 1) << e.output;
  EXPECT_TRUE(one_line(e.output)) << e.output;
  EXPECT_NE(e.output.find(path + ": "), std::string::npos) << e.output;
}

TEST(HostileModel, AFileThatCrashesLibTorchsLoaderIsRefusedNotFatal) {
  // Found by fuzz_model_file: one changed byte makes LibTorch 1.13's unpickler die with SIGSEGV.
  // load_model probes the file in a child process first, so every command gets a clean error.
  const std::string crash = std::string(BOTTLENECK_SOURCE_DIR) + "/tests/fuzz/known_crashes/libtorch-1.13-parse-class-constant.ckpt";
  ASSERT_TRUE(fs::exists(crash));
  try {
    load_model(crash, torch::kCPU);
    // A later LibTorch may read the file without crashing; then it must still be refused as ours.
    ADD_FAILURE() << "loaded a damaged checkpoint";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind(crash + ": ", 0), 0u) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  // Every command that reads a model or checkpoint file, export too (it segfaulted: exit 139).
  TempDir dir;
  for (const std::string& command : {"info " + crash, "export --checkpoint " + crash + " --output " + dir / "out.pt"}) {
    const CommandResult r = run_cli(command);
    EXPECT_EQ(r.exit_code, 1) << command << "\n" << r.output;
    EXPECT_NE(r.output.find(crash + ": a damaged or hostile model file"), std::string::npos) << r.output;
  }
}

// TorchScript runs while a file loads: a __setstate__ that never returns blocked every command
// that reads the file, forever (the probe waited a minute, then loaded it in-process anyway).
// The probe now kills its child after BOTTLENECK_LOAD_TIMEOUT_S (default 60 s) and refuses the file.
TEST(HostileModel, AFileWhoseLoadingNeverEndsIsRefusedAfterTheTimeout) {
  TempDir dir;
  const std::string path = dir / "loops.pt";
  torch::jit::Module looping("__torch__.Loops");
  looping.register_attribute("n", c10::IntType::get(), int64_t{1});
  looping.define(R"(
def forward(self, x: Tensor) -> Tensor:
    return x

def __getstate__(self) -> int:
    return self.n

def __setstate__(self, state: int) -> None:
    self.n = state
    while self.n > 0:
        self.n = self.n + 1 - 1
)");
  looping.save(path);
  ASSERT_TRUE(fs::exists(path));

  const auto start = std::chrono::steady_clock::now();
  const CommandResult r = run_command(std::string(kLoadTimeoutVariable) + "=2 '" + BOTTLENECK_CLI_PATH + "' info " + path);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(one_line(r.output)) << r.output;
  EXPECT_NE(r.output.find(path + ": loading it did not finish within 2 s"), std::string::npos) << r.output;
  EXPECT_LT(seconds, 30) << "the timeout did not stop the load";

  // The library call, as denoise and eval make it.
  ASSERT_EQ(setenv(kLoadTimeoutVariable, "1.5", 1), 0);
  try {
    load_model(path, torch::kCPU);
    ADD_FAILURE() << "loaded a file whose loading never ends";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did not finish within 1.5 s"), std::string::npos) << e.what();
  }
  ASSERT_EQ(setenv(kLoadTimeoutVariable, "soon", 1), 0);
  EXPECT_THROW(load_probe_timeout_s(), UsageError);
  unsetenv(kLoadTimeoutVariable);
  EXPECT_EQ(load_probe_timeout_s(), kDefaultLoadTimeoutS);
}

// The shipped denoisers: found by the CLI in a build tree and after `cmake --install`, chosen by
// the input's channels, small enough to ship, and actually denoising.
#include <filesystem>
#include <fstream>
#include <regex>
#include <tuple>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "util/error.h"
#include "image/image_io.h"
#include "inference/shipped_models.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using bottleneck::test::run_cli;
using bottleneck::test::run_command;
using bottleneck::test::TempDir;

namespace {

const std::string kSource = BOTTLENECK_SOURCE_DIR;
const std::string kBuild = BOTTLENECK_BUILD_DIR;

// "mean PSNR 20.31 dB noisy -> 29.12 dB denoised" -> {20.31, 29.12}
std::pair<double, double> psnr_change(const std::string& log) {
  std::smatch m;
  if (!std::regex_search(log, m, std::regex(R"(mean PSNR ([0-9.]+) dB noisy -> ([0-9.]+) dB denoised)"))) return {0, 0};
  return {std::stod(m[1]), std::stod(m[2])};
}

void write_images(const std::string& dir, int channels, int count) {
  test::write_synthetic_images(dir, count, channels, 96, 128, 40 + channels);
}

// The model the CLI picks for colour images without --model: the photo model once shipped.
std::string default_colour_model() {
  return fs::exists(kBuild + "/models/denoise-photo.pt") ? "denoise-photo.pt" : "denoise-color.pt";
}

}  // namespace

TEST(ShippedModels, NamesAndSearchOrder) {
  EXPECT_EQ(shipped_model_name(1), "denoise-gray.pt");
  EXPECT_EQ(shipped_model_name(3, "gaussian"), "denoise-color.pt");
  const fs::path exe_dir = fs::read_symlink("/proc/self/exe").parent_path();
  const std::vector<std::string> dirs = shipped_model_dirs();
  ASSERT_EQ(dirs.size(), 2u);
  EXPECT_EQ(dirs[0], (exe_dir / "models").string());
  EXPECT_EQ(dirs[1], (exe_dir.parent_path() / "share/bottleneck/models").string());
}

TEST(ShippedModels, FamiliesByShortName) {
  EXPECT_EQ(shipped_model_name(1, "gaussian"), "denoise-gray.pt");
  EXPECT_EQ(shipped_model_name(3, "gaussian"), "denoise-color.pt");
  EXPECT_EQ(shipped_model_name(3, "photo"), "denoise-photo.pt");
  EXPECT_EQ(shipped_model_name(1, "photo"), "denoise-gray.pt");  // no gray photo model
  EXPECT_THROW(shipped_model_name(3, "fancy"), UsageError);
  EXPECT_EQ(shipped_family_of("photo"), "photo");
  EXPECT_EQ(shipped_family_of("gaussian"), "gaussian");
  EXPECT_EQ(shipped_family_of("models/x.pt"), "");
  EXPECT_EQ(shipped_family_of(""), "");
  // The default colour model is the photo model where it is shipped, else the Gaussian one (this
  // test executable's folder has no models; the CLI's has, see below).
  EXPECT_EQ(shipped_model_name(3), "denoise-color.pt");
  EXPECT_EQ(shipped_model_name(1), "denoise-gray.pt");
  // A file of that name wins over the family.
  TempDir dir;
  const fs::path here = fs::current_path();
  fs::current_path(dir.path());
  std::ofstream("photo") << "x";
  EXPECT_EQ(shipped_family_of("photo"), "");
  fs::current_path(here);
}

TEST(ShippedModels, AreSmallBlindAndMatchTheirChannels) {
  for (const auto& [channels, family, noise] : {std::tuple<int, const char*, const char*>{1, "gaussian", "gaussian:0-55"},
                                                 {3, "gaussian", "gaussian:0-55"},
                                                 {3, "photo", "camera:"}}) {
    const std::string path = kSource + "/models/" + shipped_model_name(channels, family);
    ASSERT_TRUE(fs::is_regular_file(path)) << path;
    EXPECT_LE(fs::file_size(path), 10u * 1000 * 1000) << path;
    const auto r = run_cli("info " + path);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("\"in_channels\":" + std::to_string(channels)), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(noise), std::string::npos) << r.output;
    // The build tree has the same file next to the executable.
    EXPECT_EQ(fs::file_size(path), fs::file_size(kBuild + "/models/" + shipped_model_name(channels, family)));
  }
}

// With --model gaussian, gray images go through the gray model and colour images through the
// colour one, and both clean Gaussian noise off by a wide margin.
TEST(ShippedModels, DenoiseChoosesByChannelsAndCleans) {
  TempDir dir;
  for (int channels : {1, 3}) {
    const std::string in = dir / ("in" + std::to_string(channels));
    write_images(in, channels, 2);
    const auto r = run_cli("denoise " + in + " " + dir / ("out" + std::to_string(channels)) +
                           " --model gaussian --add-noise gaussian:25 --seed 3 -v --threads 2");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const std::string used = kBuild + "/models/" + shipped_model_name(channels, "gaussian");
    const std::string other = kBuild + "/models/" + shipped_model_name(channels == 1 ? 3 : 1, "gaussian");
    EXPECT_NE(r.output.find("model " + used), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("model " + other), std::string::npos) << r.output;  // loaded only when needed
    const auto [noisy, denoised] = psnr_change(r.output);
    EXPECT_GT(noisy, 19.0) << r.output;
    EXPECT_GT(denoised - noisy, 6.0) << r.output;
  }
  // A mixed folder loads both and keeps each image's channels.
  const std::string mixed = dir / "mixed";
  write_images(mixed + "/g", 1, 1);
  write_images(mixed + "/c", 3, 1);
  const auto r = run_cli("denoise " + mixed + " " + dir / "out-mixed" + " --add-noise gaussian:25 -v --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("denoise-gray.pt"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(default_colour_model()), std::string::npos) << r.output;
  EXPECT_EQ(cv::imread(dir / "out-mixed/g/img000.png", cv::IMREAD_UNCHANGED).channels(), 1);
  EXPECT_EQ(cv::imread(dir / "out-mixed/c/img000.png", cv::IMREAD_UNCHANGED).channels(), 3);
}

TEST(ShippedModels, EvalDefaultsToTheModelForTheFirstImage) {
  TempDir dir;
  write_images(dir / "gray", 1, 1);
  write_images(dir / "colour", 3, 1);
  for (const char* set : {"gray", "colour"}) {
    const auto r = run_cli("eval --clean " + dir / set + " --no-nlm --threads 2");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const std::string expected = kBuild + "/models/" + (std::string(set) == "gray" ? "denoise-gray.pt" : default_colour_model());
    EXPECT_NE(r.output.find("model " + expected), std::string::npos) << r.output;
  }
}

// `cmake --install` puts the models under PREFIX/share/bottleneck/models, where the installed
// executable finds them.
TEST(ShippedModels, InstalledExecutableFindsThem) {
  TempDir dir;
  const std::string prefix = dir / "prefix";
  auto r = run_command(std::string(BOTTLENECK_CMAKE) + " --install " + kBuild + " --prefix " + prefix);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::is_regular_file(prefix + "/share/bottleneck/models/denoise-gray.pt"));
  EXPECT_TRUE(fs::is_regular_file(prefix + "/share/bottleneck/models/denoise-color.pt"));
  write_images(dir / "in", 1, 1);
  r = run_command(prefix + "/bin/bottleneck denoise " + dir / "in" + " " + dir / "out" + " -v --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("model " + prefix + "/share/bottleneck/models/denoise-gray.pt"), std::string::npos)
      << r.output;
  EXPECT_TRUE(fs::is_regular_file(dir / "out/img000.png"));
}

// The CPU block cache changes where tensors live, never what they hold: a folder with one image
// large enough for several tiles and two small ones (batched) gives the same bytes with the
// cache on (the default) and off, and the cache really served blocks (-v reports it).
TEST(ShippedModels, DenoiseGivesTheSameBytesWithTheCpuCacheOnAndOff) {
  TempDir dir;
  const std::string in = dir / "in";
  test::write_synthetic_images(in + "/small", 2, 3, 96, 128, 7);
  test::write_synthetic_images(in + "/large", 1, 3, 1100, 1300, 8);
  const auto off = run_cli("denoise " + in + " " + dir / "off" + " --cpu-cache 0 --threads 2 -v");
  ASSERT_EQ(off.exit_code, 0) << off.output;
  const auto on = run_cli("denoise " + in + " " + dir / "on" + " --threads 2 -v");
  ASSERT_EQ(on.exit_code, 0) << on.output;
  for (const char* name : {"small/img000.png", "small/img001.png", "large/img000.png"}) {
    const auto a = run_command("cmp " + dir / "off/" + name + " " + dir / "on/" + name);
    EXPECT_EQ(a.exit_code, 0) << name << ": " << a.output;
  }
  EXPECT_EQ(off.output.find("CPU cache:"), std::string::npos) << off.output;
#if !defined(__SANITIZE_ADDRESS__)  // sanitizer builds keep the cache off (cpu_allocator.h)
  std::smatch m;
  ASSERT_TRUE(std::regex_search(on.output, m, std::regex(R"(CPU cache: ([0-9]+) hits, ([0-9]+) misses)"))) << on.output;
  EXPECT_GT(std::stoi(m[1]), std::stoi(m[2])) << on.output;
#endif
  const auto bad = run_cli("--cpu-cache -1 arch");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--cpu-cache"), std::string::npos) << bad.output;
}

// What `denoise` takes as its inputs and its output (issue 19): a named output file, paths too
// long for the system, our own temporaries in an input folder, JPEGs the decoder cannot read.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <regex>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "image/image_io.h"
#include "util/error.h"
#include "util/file_jobs.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using bottleneck::test::run_cli;
using bottleneck::test::TempDir;

namespace {

// The shipped Gaussian models on small images: quick, and no training needed.
const std::string kFlags = " --model gaussian --threads 1 ";

void write_png(const std::string& path, int channels, uint64_t seed) {
  fs::create_directories(fs::path(path).parent_path());
  ASSERT_TRUE(cv::imwrite(path, tensor_to_mat(test::synthetic_image(channels, 24, 20, seed), CV_8U))) << path;
}

// "denoised 2, skipped 1, failed 0" -> {2, 1, 0}
std::vector<int> counts(const std::string& output) {
  std::smatch m;
  if (!std::regex_search(output, m, std::regex("denoised (\\d+), skipped (\\d+), failed (\\d+) \\("))) return {};
  return {std::stoi(m[1]), std::stoi(m[2]), std::stoi(m[3])};
}

}  // namespace

TEST(DenoiseInputs, ALoneFileWithAnImageNameAsOutputWritesThatFile) {
  TempDir dir;
  write_png(dir / "in.png", 3, 1);
  auto r = run_cli("denoise " + dir / "in.png" + " " + dir / "out.png --compare" + kFlags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counts(r.output), (std::vector<int>{1, 0, 0})) << r.output;
  ASSERT_TRUE(fs::is_regular_file(dir / "out.png")) << "out.png must be the output file, not a folder";
  const cv::Mat out = cv::imread(dir / "out.png", cv::IMREAD_UNCHANGED);
  EXPECT_EQ(out.rows, 24);
  EXPECT_EQ(out.cols, 20);
  EXPECT_EQ(out.channels(), 3);
  EXPECT_TRUE(fs::is_regular_file(dir / "out.compare.png"));

  // Beside its input, under another name: no --suffix needed; the input itself is refused.
  r = run_cli("denoise " + dir / "in.png" + " " + dir / "in.dn.png" + kFlags);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::is_regular_file(dir / "in.dn.png"));
  r = run_cli("denoise " + dir / "in.png" + " " + dir / "in.png --overwrite" + kFlags);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("would overwrite the input"), std::string::npos) << r.output;

  // An existing output file is the user's, as for folders.
  r = run_cli("denoise " + dir / "in.png" + " " + dir / "out.png" + kFlags);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("already exists"), std::string::npos) << r.output;

  // A format the name contradicts, and a suffix that has no folder to name files in.
  r = run_cli("denoise " + dir / "in.png" + " " + dir / "x.jpg --format png" + kFlags);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--format png disagrees"), std::string::npos) << r.output;
  r = run_cli("denoise " + dir / "in.png" + " " + dir / "y.JPEG --format jpg" + kFlags);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(cv::imread(dir / "y.JPEG").empty());
  r = run_cli("denoise " + dir / "in.png" + " " + dir / "z.png --suffix dn" + kFlags);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_FALSE(fs::exists(dir / "z.png"));
}

TEST(DenoiseInputs, AnExistingFolderNamedLikeAnImageStaysAFolder) {
  TempDir dir;
  write_png(dir / "in.png", 1, 2);
  fs::create_directories(dir / "out.png");
  const auto r = run_cli("denoise " + dir / "in.png" + " " + dir / "out.png" + kFlags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::is_regular_file(dir / "out.png/in.png"));
}

TEST(DenoiseInputs, APathTooLongForTheSystemIsAFailureByName) {
  TempDir dir;
  write_png(dir / "in/a.png", 3, 3);
  // 22 folders of 243 characters: the deepest lie past PATH_MAX (4096), reachable only by
  // openat from a folder above, as a tree copied from elsewhere can be.
  int fd = ::open((dir / "in").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  std::string deep = dir / "in";
  for (int level = 0; level < 22; ++level) {
    const std::string name = "d" + std::to_string(100 + level) + std::string(240, 'x');
    ASSERT_EQ(::mkdirat(fd, name.c_str(), 0755), 0);
    const int next = ::openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY);
    ::close(fd);
    ASSERT_GE(next, 0);
    fd = next;
    deep += "/" + name;
  }
  std::vector<uchar> png;
  ASSERT_TRUE(cv::imencode(".png", tensor_to_mat(test::synthetic_image(3, 16, 16, 4), CV_8U), png));
  const int file = ::openat(fd, "b.png", O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(file, 0);
  ASSERT_EQ(::write(file, png.data(), png.size()), static_cast<ssize_t>(png.size()));
  ::close(file);
  ::close(fd);
  ASSERT_GT(deep.size() + 6, 5000u);

  const auto r = run_cli("denoise " + dir / "in" + " " + dir / "out" + kFlags);
  // The codec's listing (util/file_jobs: a recursive_directory_iterator, which descends with
  // openat) does list the deep file; reading it then fails by name, as any unreadable file does.
  std::vector<Error> unlisted;
  const std::vector<std::string> listed =
      list_files(dir / "in", [](const std::string& p) { return has_image_extension(p); }, &unlisted);
  EXPECT_TRUE(unlisted.empty());
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[1], deep + "/b.png");
  try {
    load_samples(listed[1]);
    ADD_FAILURE() << "a path past PATH_MAX cannot be opened";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("path too long for the system"), std::string::npos) << e.what();
  }
  // GNU rm walks with openat; the TempDir's remove_all cannot go past PATH_MAX.
  test::run_command("rm -rf " + dir / "in");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(counts(r.output), (std::vector<int>{1, 0, 1})) << r.output;
  EXPECT_NE(r.output.find("path too long"), std::string::npos) << r.output;
  // The entry named is the first one past the limit, on the way to b.png.
  EXPECT_NE(r.output.find("/d116" + std::string(240, 'x') + ": cannot read"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::is_regular_file(dir / "out/a.png"));
}

TEST(DenoiseInputs, OurOwnTemporariesInAnInputFolderAreNotInputs) {
  TempDir dir;
  write_png(dir / "in/a.png", 3, 5);
  write_png(dir / "in/sub/.b.png.tmp-4242-7.png", 3, 6);  // a valid image, named like our temporaries
  write_png(dir / "in/sub/.c.png", 3, 7);                 // a hidden file is still an input
  std::vector<std::string> temporaries;
  const std::vector<std::string> listed = list_images(dir / "in", nullptr, &temporaries);
  EXPECT_EQ(listed, (std::vector<std::string>{dir / "in/a.png", dir / "in/sub/.c.png"}));
  EXPECT_EQ(temporaries, (std::vector<std::string>{dir / "in/sub/.b.png.tmp-4242-7.png"}));

  const auto r = run_cli("denoise " + dir / "in" + " " + dir / "out" + kFlags);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(counts(r.output), (std::vector<int>{2, 0, 0})) << r.output;
  EXPECT_NE(r.output.find("left out 1 temporary file(s) of interrupted writes"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "out/sub/.b.png.tmp-4242-7.png"));
  EXPECT_TRUE(fs::exists(dir / "out/sub/.c.png"));
}

TEST(DenoiseInputs, A12BitJpegIsNamedAsSuchNotAsCorrupt) {
  TempDir dir;
  std::vector<uchar> jpeg;
  ASSERT_TRUE(cv::imencode(".jpg", tensor_to_mat(test::synthetic_image(3, 16, 16, 8), CV_8U), jpeg));
  // The frame header's precision byte (SOF0: FF C0, length, precision) set to 12, as a
  // 12-bit encoder writes it (libjpeg-turbo 2.1's cjpeg cannot make one).
  size_t sof = 0;
  for (size_t i = 2; i + 4 < jpeg.size() && !sof; ++i)
    if (jpeg[i] == 0xFF && jpeg[i + 1] == 0xC0) sof = i;
  ASSERT_GT(sof, 0u);
  ASSERT_EQ(jpeg[sof + 4], 8);
  jpeg[sof + 4] = 12;
  try {
    decode_image("deep.jpg", jpeg);
    FAIL() << "a 12-bit JPEG must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("is a 12-bit JPEG"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
  }
  // Lossless JPEG (SOF3) likewise.
  jpeg[sof + 4] = 8;
  jpeg[sof + 1] = 0xC3;
  try {
    decode_image("lossless.jpg", jpeg);
    FAIL() << "a lossless JPEG must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lossless JPEG"), std::string::npos) << e.what();
  }
}

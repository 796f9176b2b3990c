#include "image/image_io.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <iterator>
#include <random>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "util/error.h"
#include "test_util.h"

namespace bottleneck {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

cv::Mat random_mat(int rows, int cols, int type, uint64_t seed) {
  cv::Mat m(rows, cols, type);
  cv::RNG rng(seed);
  double top = CV_MAT_DEPTH(type) == CV_16U ? 65536 : 256;
  rng.fill(m, cv::RNG::UNIFORM, 0, top);
  return m;
}

bool mats_equal(const cv::Mat& a, const cv::Mat& b) {
  if (a.size() != b.size() || a.type() != b.type()) return false;
  cv::Mat diff;
  cv::absdiff(a, b, diff);
  return cv::countNonZero(diff.reshape(1)) == 0;
}

// Expects `fn` to throw an Error whose message names `path` and contains `reason`.
template <typename Fn>
void expect_error(Fn fn, const std::string& path, const std::string& reason) {
  try {
    fn();
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find(reason), std::string::npos) << what << "\n  expected: " << reason;
  }
}

// Saves `mat` (as OpenCV lays it out) through save_image at its depth and reloads it.
cv::Mat round_trip(const TempDir& dir, const std::string& name, const cv::Mat& mat) {
  ImageData image;
  image.depth = mat.depth();
  image.pixels = mat_to_tensor(mat);
  if (mat.channels() == 4) cv::extractChannel(mat, image.alpha, 3);
  save_image(dir / name, image);
  ImageData back = load_image(dir / name);
  EXPECT_EQ(back.depth, mat.depth());
  cv::Mat out = tensor_to_mat(back.pixels, back.depth);
  if (!back.alpha.empty()) {
    std::vector<cv::Mat> planes;
    cv::split(out, planes);
    planes.push_back(back.alpha);
    cv::merge(planes, out);
  }
  return out;
}

TEST(ImageIo, Png8BitRoundTripIsExact) {
  TempDir dir;
  cv::Mat gray = random_mat(13, 17, CV_8UC1, 1), colour = random_mat(9, 11, CV_8UC3, 2);
  EXPECT_TRUE(mats_equal(round_trip(dir, "g.png", gray), gray));
  EXPECT_TRUE(mats_equal(round_trip(dir, "c.png", colour), colour));
  EXPECT_EQ(load_image(dir / "g.png").pixels.size(0), 1);
  EXPECT_EQ(load_image(dir / "c.png").pixels.size(0), 3);
}

TEST(ImageIo, Png16BitRoundTripKeepsEveryValue) {
  TempDir dir;
  cv::Mat m = random_mat(8, 8, CV_16UC1, 3);
  const uint16_t special[] = {0, 1, 257, 65535, 65534, 32768, 255, 256};
  for (int i = 0; i < 8; ++i) m.at<uint16_t>(0, i) = special[i];
  cv::Mat back = round_trip(dir, "g16.png", m);
  ASSERT_TRUE(mats_equal(back, m));
  EXPECT_EQ(back.at<uint16_t>(0, 1), 1);
  EXPECT_EQ(back.at<uint16_t>(0, 2), 257);
  EXPECT_EQ(back.at<uint16_t>(0, 3), 65535);
  cv::Mat colour = random_mat(7, 5, CV_16UC3, 4);
  EXPECT_TRUE(mats_equal(round_trip(dir, "c16.png", colour), colour));
  // The file itself is 16-bit.
  EXPECT_EQ(cv::imread(dir / "c16.png", cv::IMREAD_UNCHANGED).depth(), CV_16U);
}

TEST(ImageIo, Tiff16BitRoundTripKeepsEveryValue) {
  TempDir dir;
  cv::Mat m = random_mat(6, 9, CV_16UC3, 5);
  m.at<cv::Vec3w>(0, 0) = cv::Vec3w(1, 257, 65535);
  EXPECT_TRUE(mats_equal(round_trip(dir, "c16.tif", m), m));
  cv::Mat g = random_mat(6, 9, CV_16UC1, 6);
  EXPECT_TRUE(mats_equal(round_trip(dir, "g16.TIFF", g), g));
}

TEST(ImageIo, ColourOrderInTensorIsRgb) {
  TempDir dir;
  cv::Mat blue(4, 6, CV_8UC3, cv::Scalar(255, 0, 0));  // OpenCV order is BGR
  ASSERT_TRUE(cv::imwrite(dir / "blue.png", blue));
  ImageData image = load_image(dir / "blue.png");
  ASSERT_EQ(image.pixels.sizes(), torch::IntArrayRef({3, 4, 6}));
  EXPECT_TRUE(torch::equal(image.pixels[2], torch::ones({4, 6})));
  EXPECT_TRUE(torch::equal(image.pixels[0], torch::zeros({4, 6})));
  EXPECT_TRUE(torch::equal(image.pixels[1], torch::zeros({4, 6})));
  EXPECT_TRUE(image.alpha.empty());
  EXPECT_EQ(image.depth, CV_8U);
  EXPECT_TRUE(mats_equal(tensor_to_mat(image.pixels, CV_8U), blue));
}

TEST(ImageIo, AlphaPassesThroughUnchanged) {
  TempDir dir;
  for (int type : {CV_8UC4, CV_16UC4}) {
    cv::Mat bgra = random_mat(10, 12, type, 7);
    cv::Mat back = round_trip(dir, "a.png", bgra);
    ASSERT_EQ(back.channels(), 4);
    cv::Mat alpha_in, alpha_out;
    cv::extractChannel(bgra, alpha_in, 3);
    cv::extractChannel(back, alpha_out, 3);
    EXPECT_TRUE(mats_equal(alpha_in, alpha_out));
    EXPECT_TRUE(mats_equal(back, bgra));
    ImageData loaded = load_image(dir / "a.png");
    EXPECT_EQ(loaded.pixels.size(0), 3);
    EXPECT_TRUE(mats_equal(loaded.alpha, alpha_in));
  }
}

TEST(ImageIo, AlphaIsConvertedToTheWrittenDepth) {
  TempDir dir;
  ImageData image;
  image.pixels = torch::full({1, 2, 3}, 0.5);
  image.depth = CV_16U;
  image.alpha = cv::Mat(2, 3, CV_8UC1, cv::Scalar(0));
  image.alpha.at<uint8_t>(0, 0) = 255;
  image.alpha.at<uint8_t>(0, 1) = 1;
  save_image(dir / "x.png", image);
  ImageData back = load_image(dir / "x.png");
  ASSERT_EQ(back.alpha.depth(), CV_16U);
  EXPECT_EQ(back.alpha.at<uint16_t>(0, 0), 65535);
  EXPECT_EQ(back.alpha.at<uint16_t>(0, 1), 257);
  EXPECT_EQ(back.alpha.at<uint16_t>(1, 2), 0);
  // Gray with alpha is written as BGRA with equal colour planes.
  EXPECT_EQ(back.pixels.size(0), 3);
  EXPECT_TRUE(torch::equal(back.pixels[0], back.pixels[2]));
}

TEST(ImageIo, JpegIsWrittenWith8Bits) {
  TempDir dir;
  ImageData image;
  image.pixels = test::synthetic_image(3, 16, 16, 1);
  image.depth = CV_16U;
  save_image(dir / "x.jpg", image);
  EXPECT_EQ(cv::imread(dir / "x.jpg", cv::IMREAD_UNCHANGED).depth(), CV_8U);
  ImageData back = load_image(dir / "x.jpg");
  EXPECT_EQ(back.depth, CV_8U);
  // Exactly what OpenCV makes of the 8-bit rounding of the pixels.
  ASSERT_TRUE(cv::imwrite(dir / "ref.jpg", tensor_to_mat(image.pixels, CV_8U)));
  EXPECT_TRUE(torch::equal(back.pixels, load_image(dir / "ref.jpg").pixels));
}

TEST(ImageIo, FloatTiffIsClampedToUnitRange) {
  TempDir dir;
  cv::Mat f(2, 2, CV_32FC1);
  f.at<float>(0, 0) = 0.25f;
  f.at<float>(0, 1) = 1.5f;
  f.at<float>(1, 0) = -0.2f;
  f.at<float>(1, 1) = 1.0f;
  ASSERT_TRUE(cv::imwrite(dir / "f.tif", f));
  ImageData image = load_image(dir / "f.tif");
  EXPECT_EQ(image.depth, CV_32F);
  EXPECT_FLOAT_EQ(image.pixels[0][0][0].item<float>(), 0.25f);
  EXPECT_FLOAT_EQ(image.pixels[0][0][1].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(image.pixels[0][1][0].item<float>(), 0.0f);
  save_image(dir / "g.tif", image);
  EXPECT_EQ(cv::imread(dir / "g.tif", cv::IMREAD_UNCHANGED).depth(), CV_32F);
  save_image(dir / "g.png", image);  // PNG has no float samples: 16 bits
  EXPECT_EQ(cv::imread(dir / "g.png", cv::IMREAD_UNCHANGED).depth(), CV_16U);
}

TEST(ImageIo, TensorToMatRoundsAndSaturates) {
  auto t = torch::tensor({-0.5f, 0.0f, 0.5f / 255, 1.4f / 255, 0.5f, 1.0f, 7.0f}).view({1, 1, 7});
  cv::Mat m = tensor_to_mat(t, CV_8U);
  std::vector<int> expected = {0, 0, 0, 1, 128, 255, 255};  // 127.5 rounds to even 128
  for (int i = 0; i < 7; ++i) EXPECT_EQ(m.at<uint8_t>(0, i), expected[i]) << i;
  cv::Mat m16 = tensor_to_mat(t, CV_16U);
  EXPECT_EQ(m16.at<uint16_t>(0, 0), 0);
  EXPECT_EQ(m16.at<uint16_t>(0, 5), 65535);
  EXPECT_EQ(m16.at<uint16_t>(0, 6), 65535);
}

TEST(ImageIo, LoadErrorsNameThePathAndTheReason) {
  TempDir dir;
  expect_error([&] { load_image(dir / "missing.png"); }, dir / "missing.png", "no such file");
  fs::create_directory(dir / "x.png");
  expect_error([&] { load_image(dir / "x.png"); }, dir / "x.png", "is a directory");
  write_bytes(dir / "empty.png", "");
  expect_error([&] { load_image(dir / "empty.png"); }, dir / "empty.png", "empty file");
  std::string noise(4096, '\0');
  std::mt19937 rng(1);
  for (char& c : noise) c = static_cast<char>(rng());
  write_bytes(dir / "random.png", noise);
  expect_error([&] { load_image(dir / "random.png"); }, dir / "random.png",
               "not a recognised image (unknown format or corrupt data)");
  write_bytes(dir / "text.jpg", "this is not a picture\n");
  expect_error([&] { load_image(dir / "text.jpg"); }, dir / "text.jpg", "not a recognised image");

  ASSERT_TRUE(cv::imwrite(dir / "good.png", tensor_to_mat(test::synthetic_image(3, 64, 64, 2), CV_8U)));
  std::string png = read_bytes(dir / "good.png");
  write_bytes(dir / "cut.png", png.substr(0, png.size() / 2));
  expect_error([&] { load_image(dir / "cut.png"); }, dir / "cut.png", "truncated or corrupt image data");
  ASSERT_TRUE(cv::imwrite(dir / "good.jpg", tensor_to_mat(test::synthetic_image(3, 64, 64, 2), CV_8U)));
  std::string jpg = read_bytes(dir / "good.jpg");
  write_bytes(dir / "cut.jpg", jpg.substr(0, jpg.size() * 2 / 3));
  expect_error([&] { load_image(dir / "cut.jpg"); }, dir / "cut.jpg", "truncated or corrupt image data");

  if (geteuid() != 0) {  // root reads anything
    fs::copy_file(dir / "good.png", dir / "locked.png");
    fs::permissions(dir / "locked.png", fs::perms::none);
    expect_error([&] { load_image(dir / "locked.png"); }, dir / "locked.png", "permission denied");
    fs::create_directory(dir / "closed");
    fs::copy_file(dir / "good.png", dir / "closed/in.png");
    fs::permissions(dir / "closed", fs::perms::none);
    expect_error([&] { load_image(dir / "closed/in.png"); }, dir / "closed/in.png", "permission denied");
    fs::permissions(dir / "closed", fs::perms::owner_all);
  }
}

std::string png_chunk(const std::string& type, const std::string& data) {
  auto be32 = [](uint32_t v) {
    return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  };
  std::string body = type + data;
  uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size()));
  return be32(static_cast<uint32_t>(data.size())) + body + be32(crc);
}

TEST(ImageIo, PixelLimitIsCheckedBeforeDecoding) {
  TempDir dir;
  // A valid PNG header claiming 100000 x 100000 gray pixels (10 GB decoded), with a tiny IDAT.
  std::string ihdr = {0, 1, char(0x86), char(0xA0), 0, 1, char(0x86), char(0xA0), 8, 0, 0, 0, 0};
  std::string raw(64, '\0');
  uLongf size = compressBound(raw.size());
  std::string idat(size, '\0');
  ASSERT_EQ(compress(reinterpret_cast<Bytef*>(idat.data()), &size, reinterpret_cast<const Bytef*>(raw.data()),
                     raw.size()),
            Z_OK);
  idat.resize(size);
  write_bytes(dir / "bomb.png", std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) +
                                    png_chunk("IDAT", idat) + png_chunk("IEND", ""));
  auto start = std::chrono::steady_clock::now();
  expect_error([&] { load_image(dir / "bomb.png"); }, dir / "bomb.png",
               "image is 100000x100000 = 10000000000 pixels, over the limit of 268435456 (--max-pixels)");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));

  // The same limit for real files of each sniffed format, and after decoding for the rest.
  cv::Mat m = tensor_to_mat(test::synthetic_image(3, 20, 30, 3), CV_8U);
  for (const char* name : {"s.png", "s.jpg", "s.bmp", "s.tif", "s.webp", "s.ppm"}) {
    ASSERT_TRUE(cv::imwrite(dir / name, m)) << name;
    expect_error([&] { load_image(dir / name, 599); }, dir / name, "image is 30x20 = 600 pixels");
    EXPECT_NO_THROW(load_image(dir / name, 600)) << name;
  }
}

TEST(ImageIo, FormatsWhoseSizeIsNotReadFromTheHeaderAreRefused) {
  TempDir dir;
  // OpenCV decodes these by their signature whatever the extension; their size would only be
  // checked after decoding, so they are refused (a 32768 x 32768 HDR file is 12 GB of floats).
  cv::Mat colour = tensor_to_mat(test::synthetic_image(3, 8, 8, 1), CV_8U);
  cv::Mat floats;
  colour.convertTo(floats, CV_32F, 1.0 / 255);
  ASSERT_TRUE(cv::imwrite(dir / "a.ras", colour));
  ASSERT_TRUE(cv::imwrite(dir / "a.hdr", floats));
  ASSERT_TRUE(cv::imwrite(dir / "a.pam", colour));
  for (const char* name : {"a.ras", "a.hdr", "a.pam"}) {
    ASSERT_FALSE(cv::imread(dir / name).empty()) << "OpenCV reads " << name;
    fs::copy_file(dir / name, dir / (std::string(name) + ".png"));
    expect_error([&] { load_image(dir / (std::string(name) + ".png")); }, dir / (std::string(name) + ".png"),
                 "not a recognised image (unknown format or corrupt data); PNG, JPEG, BMP, TIFF, WebP and PNM are read");
  }
  write_bytes(dir / "bomb.hdr.png", "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 32768 +X 32768\n" + std::string(64, '\x02'));
  expect_error([&] { load_image(dir / "bomb.hdr.png"); }, dir / "bomb.hdr.png", "not a recognised image");
  // Known formats whose header leaves out the size are refused rather than decoded blind.
  write_bytes(dir / "nosof.jpg", std::string("\xFF\xD8\xFF\xDA\x00\x02\xFF\xD9", 8));
  expect_error([&] { load_image(dir / "nosof.jpg"); }, dir / "nosof.jpg",
               "truncated or corrupt image data (the JPEG header gives no image size)");
}

TEST(ImageIo, SaveIsAtomicAndCleansUp) {
  TempDir dir;
  ImageData image;
  image.pixels = test::synthetic_image(3, 8, 8, 4);
  save_image(dir / "out.png", image);
  save_image(dir / "out.png", image);  // replaces
  save_image(dir / "out.webp", image);
  EXPECT_EQ(dir_entries(dir.path()), (std::vector<std::string>{"out.png", "out.webp"}));

  // A parent that is a file cannot hold anything, even for root.
  write_bytes(dir / "file", "x");
  expect_error([&] { save_image(dir / "file/out.png", image); }, dir / "file/out.png", "is not a directory");
  expect_error([&] { save_image(dir / "nodir/out.png", image); }, dir / "nodir/out.png", "does not exist");
  expect_error([&] { save_image(dir / "out.xyz", image); }, dir / "out.xyz", "unknown image format");
  // The target is a directory: refused before anything is written, nothing is left behind.
  fs::create_directory(dir / "sub.png");
  fs::create_directory(dir / "sub.png/inner");
  expect_error([&] { save_image(dir / "sub.png", image); }, dir / "sub.png", "is a directory, not a regular file");
  EXPECT_EQ(dir_entries(dir.path()), (std::vector<std::string>{"file", "out.png", "out.webp", "sub.png"}));

  if (geteuid() != 0) {
    fs::create_directory(dir / "ro");
    fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    expect_error([&] { save_image(dir / "ro/out.png", image); }, dir / "ro/out.png", "permission denied");
    EXPECT_TRUE(dir_entries(dir / "ro").empty());
    fs::permissions(dir / "ro", fs::perms::owner_all);
  }
}

TEST(ImageIo, ToChannelsUsesBt601Luma) {
  auto rgb = torch::zeros({3, 1, 4});
  rgb[0][0][0] = 1;  // red
  rgb[1][0][1] = 1;  // green
  rgb[2][0][2] = 1;  // blue
  rgb.select(2, 3).fill_(1);  // white
  auto gray = to_channels(rgb, 1);
  ASSERT_EQ(gray.sizes(), torch::IntArrayRef({1, 1, 4}));
  EXPECT_NEAR(gray[0][0][0].item<float>(), 0.299, 1e-6);
  EXPECT_NEAR(gray[0][0][1].item<float>(), 0.587, 1e-6);
  EXPECT_NEAR(gray[0][0][2].item<float>(), 0.114, 1e-6);
  EXPECT_NEAR(gray[0][0][3].item<float>(), 1.0, 1e-6);
  auto back = to_channels(gray, 3);
  ASSERT_EQ(back.sizes(), torch::IntArrayRef({3, 1, 4}));
  EXPECT_TRUE(torch::equal(back[0], gray[0]) && torch::equal(back[2], gray[0]));
  EXPECT_TRUE(torch::equal(to_channels(rgb, 3), rgb));
  EXPECT_THROW(to_channels(rgb, 2), Error);
}

TEST(ImageIo, ListImagesRecursesSortsAndMatchesExtensionsInAnyCase) {
  TempDir dir;
  fs::create_directories(dir / "b/deep");
  fs::create_directories(dir / "a");
  fs::create_directories(dir / "dir.png");
  for (const char* name : {"z.PNG", "a/y.JpEg", "b/deep/x.tif", "b/w.webp", "dir.png/v.bmp", "c.Pgm",
                           "notes.txt", "b/readme", "b/deep/img.png.bak"})
    write_bytes(dir / name, "x");
  fs::create_symlink(dir / "z.PNG", dir / "link.png");
  fs::create_symlink(dir / "gone.png", dir / "dangling.png");
  fs::create_directory_symlink(dir / "b", dir / "dirlink.png");
  std::vector<std::string> expected;
  for (const char* name : {"a/y.JpEg", "b/deep/x.tif", "b/w.webp", "c.Pgm", "dangling.png", "dir.png/v.bmp",
                           "link.png", "z.PNG"})
    expected.push_back(dir / name);
  EXPECT_EQ(list_images(dir.path()), expected);
  EXPECT_EQ(list_images(dir / "b/w.webp"), std::vector<std::string>{dir / "b/w.webp"});
  expect_error([&] { list_images(dir / "nothing"); }, dir / "nothing", "no such file or directory");
  expect_error([&] { load_image(dir / "dangling.png"); }, dir / "dangling.png", "no such file");
  EXPECT_TRUE(has_image_extension("A.TIFF"));
  EXPECT_FALSE(has_image_extension("a.gif"));
  EXPECT_FALSE(has_image_extension("png"));
}

// Runs `fn` in a child process without the capabilities that let root ignore file permissions
// (nothing changes for other users), so permission cases are tested under root (CI) too. The
// child's text comes back through a file; a failure to drop the capabilities is reported.
std::string without_permission_override(const TempDir& dir, const std::function<std::string()>& fn) {
  const std::string out = dir / "child.txt";
  const pid_t pid = fork();
  if (pid == 0) {
    std::string text;
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct caps[2] = {};
    if (syscall(SYS_capget, &header, caps) != 0) {
      text = "capget failed";
    } else {
      caps[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
      if (syscall(SYS_capset, &header, caps) != 0) text = "capset failed";
    }
    if (text.empty()) {
      try {
        text = fn();
      } catch (const std::exception& e) {
        text = std::string("threw ") + e.what();
      }
    }
    std::ofstream(out) << text;
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream in(out);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(ImageIo, ListImagesReportsAFolderItCannotListAndListsTheRest) {
  TempDir dir;
  for (const char* name : {"a/1.png", "locked/2.png", "b/deep/locked/3.png", "b/deep/4.png", "z.png"}) {
    fs::create_directories(fs::path(dir / name).parent_path());
    write_bytes(dir / name, "x");
  }
  fs::permissions(dir / "locked", fs::perms::none);
  fs::permissions(dir / "b/deep/locked", fs::perms::none);
  const std::string listed = without_permission_override(dir, [&] {
    std::vector<Error> unlisted;
    std::string text;
    for (const std::string& f : list_images(dir.path(), &unlisted)) text += f + "\n";
    for (const Error& e : unlisted) text += std::string("unlisted ") + e.what() + "\n";
    return text;
  });
  EXPECT_EQ(listed, dir / "a/1.png\n" + dir / "b/deep/4.png\n" + dir / "z.png\n" +
                        "unlisted " + dir / "b/deep/locked: cannot list: permission denied\n" +
                        "unlisted " + dir / "locked: cannot list: permission denied\n");
  // Without a place to report it, the first unlisted folder is the caller's error; an unreadable
  // root always is, there being nothing to list.
  EXPECT_EQ(without_permission_override(dir, [&] { list_images(dir.path()); return std::string("listed"); }),
            "threw " + dir / "b/deep/locked: cannot list: permission denied");
  EXPECT_EQ(without_permission_override(dir, [&] {
              std::vector<Error> unlisted;
              list_images(dir / "locked", &unlisted);
              return std::string("listed");
            }),
            "threw " + dir / "locked: cannot list directory: permission denied");
  fs::permissions(dir / "locked", fs::perms::owner_all);
  fs::permissions(dir / "b/deep/locked", fs::perms::owner_all);
}


// The folder job keeps images as decoded samples; they must be load_image's pixels exactly and
// be written byte for byte as save_image writes their float form, including the conversions
// (16-bit to an 8-bit format, colour to PGM, gray to PPM, float to PNG).
TEST(ImageIo, SamplesAgreeWithTheFloatPathExactly) {
  TempDir dir;
  cv::Mat float_bgr = random_mat(9, 14, CV_16UC3, 8);
  float_bgr.convertTo(float_bgr, CV_32F, 1.2 / 65535.0, -0.1);  // some samples outside [0,1]
  float_bgr.at<cv::Vec3f>(2, 3)[1] = std::numeric_limits<float>::quiet_NaN();
  float_bgr.at<cv::Vec3f>(4, 5)[0] = std::numeric_limits<float>::infinity();
  const std::vector<std::pair<std::string, cv::Mat>> inputs = {
      {"g8.png", random_mat(13, 17, CV_8UC1, 1)},   {"c8.png", random_mat(9, 11, CV_8UC3, 2)},
      {"a8.png", random_mat(10, 12, CV_8UC4, 3)},   {"a16.png", random_mat(10, 12, CV_16UC4, 4)},
      {"g16.tif", random_mat(7, 9, CV_16UC1, 5)},   {"c8.jpg", random_mat(16, 24, CV_8UC3, 6)},
      {"f.tif", float_bgr}};
  int compared = 0;
  for (const auto& [name, mat] : inputs) {
    ASSERT_TRUE(cv::imwrite(dir / name, mat)) << name;
    const ImageSamples samples = load_samples(dir / name);
    const ImageData image = load_image(dir / name);
    ASSERT_EQ(samples.color.depth(), image.depth) << name;
    EXPECT_EQ((mat_to_tensor(samples.color) - image.pixels).abs().max().item<float>(), 0.0f) << name;
    EXPECT_EQ(samples.alpha.empty(), image.alpha.empty()) << name;
    if (!image.alpha.empty()) {
      EXPECT_TRUE(mats_equal(samples.alpha, image.alpha)) << name;
    }
    for (const std::string ext : {"png", "jpg", "tif", "pgm", "ppm"}) {
      const std::string a = dir / ("s-" + name + "." + ext), b = dir / ("i-" + name + "." + ext);
      if (!image.alpha.empty() && ext != "png" && ext != "tif") {
        // Both refuse to drop a (random, so not opaque) alpha plane.
        expect_error([&] { save_samples(a, samples); }, a, "cannot store");
        expect_error([&] { save_image(b, image); }, b, "cannot store");
        continue;
      }
      save_samples(a, samples);
      save_image(b, image);
      EXPECT_EQ(read_bytes(a), read_bytes(b)) << name << " as " << ext;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 35 - 2 * 3);
  // The same checks as save_image.
  expect_error([&] { save_samples(dir / "x.unknown", load_samples(dir / "g8.png")); }, dir / "x.unknown",
               "unknown image format");
}

// PNG `bytes` with a chunk of `type` and `data` inserted after IHDR (CRC included).
std::string with_png_chunk(const std::string& bytes, const std::string& type, const std::string& data) {
  std::string chunk;
  for (int k = 3; k >= 0; --k) chunk += static_cast<char>((data.size() >> (8 * k)) & 0xFF);
  const std::string body = type + data;
  const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()));
  chunk += body;
  for (int k = 3; k >= 0; --k) chunk += static_cast<char>((crc >> (8 * k)) & 0xFF);
  const size_t after_ihdr = 8 + 8 + 13 + 4;
  return bytes.substr(0, after_ihdr) + chunk + bytes.substr(after_ihdr);
}

std::string png_bytes(const cv::Mat& mat) {
  std::vector<uchar> encoded;
  EXPECT_TRUE(cv::imencode(".png", mat, encoded));
  return std::string(encoded.begin(), encoded.end());
}

// An uncompressed little-endian gray + alpha TIFF (OpenCV cannot write one).
std::string gray_alpha_tiff(int w, int h, const std::string& samples) {
  struct Entry { uint16_t tag, type; uint32_t count, value; };
  const std::vector<Entry> entries = {{256, 3, 1, uint32_t(w)}, {257, 3, 1, uint32_t(h)}, {258, 3, 2, 8 | (8 << 16)},
                                      {259, 3, 1, 1}, {262, 3, 1, 1}, {273, 4, 1, 134}, {277, 3, 1, 2},
                                      {278, 3, 1, uint32_t(h)}, {279, 4, 1, uint32_t(samples.size())},
                                      {338, 3, 1, 2}};  // one extra sample: unassociated alpha
  std::string b("II*\0\x08\0\0\0", 8);
  auto put = [&](uint64_t v, int n) { for (int k = 0; k < n; ++k) b += static_cast<char>((v >> (8 * k)) & 0xFF); };
  put(entries.size(), 2);
  for (const Entry& e : entries) {
    put(e.tag, 2);
    put(e.type, 2);
    put(e.count, 4);
    put(e.value, 4);
  }
  put(0, 4);  // no next page
  EXPECT_EQ(b.size(), 134u);
  return b + samples;
}

// OpenCV 4.6 would read the first page, the first frame, or the gray without its alpha: each
// is refused by name with the count, rather than half-read.
TEST(ImageIo, FilesHoldingMoreThanTheDecoderReturnsAreRefused) {
  TempDir dir;
  const std::vector<cv::Mat> pages = {random_mat(6, 8, CV_8UC3, 1), random_mat(6, 8, CV_8UC3, 2), random_mat(6, 8, CV_8UC3, 3)};
  ASSERT_TRUE(cv::imwritemulti(dir / "pages.tif", pages));
  expect_error([&] { load_image(dir / "pages.tif"); }, dir / "pages.tif", "is a TIFF of 3 pages");
  expect_error([&] { load_samples(dir / "pages.tif"); }, dir / "pages.tif", "split it");
  ASSERT_TRUE(cv::imwrite(dir / "one.tif", pages[0]));
  EXPECT_EQ(load_image(dir / "one.tif").pixels.size(0), 3);

  // An APNG's acTL chunk: 4 frames, played once.
  write_bytes(dir / "anim.png", with_png_chunk(png_bytes(pages[0]), "acTL", std::string("\0\0\0\x04\0\0\0\0", 8)));
  ASSERT_FALSE(cv::imread(dir / "anim.png").empty()) << "OpenCV would decode its first frame";
  expect_error([&] { load_image(dir / "anim.png"); }, dir / "anim.png", "is an animated PNG of 4 frames");

  // An animated WebP: VP8X with the animation flag, ANIM, two ANMF frames.
  std::string webp = "VP8X" + std::string("\x0a\0\0\0\x02\0\0\0\x07\0\0\x05\0\0", 14) + "ANIM" +
                     std::string("\x06\0\0\0\0\0\0\0\0\0", 10);
  for (int frame = 0; frame < 2; ++frame) webp += "ANMF" + std::string("\x10\0\0\0", 4) + std::string(16, '\0');
  const uint32_t riff = static_cast<uint32_t>(4 + webp.size());
  write_bytes(dir / "anim.webp", "RIFF" + std::string{char(riff & 0xFF), char(riff >> 8), 0, 0} + "WEBP" + webp);
  expect_error([&] { load_image(dir / "anim.webp"); }, dir / "anim.webp", "is an animated WebP of 2 frames");

  const cv::Mat ga = random_mat(4, 5, CV_8UC2, 4);
  write_bytes(dir / "ga.tif", gray_alpha_tiff(5, 4, std::string(ga.ptr<char>(0), ga.total() * 2)));
  ASSERT_EQ(cv::imread(dir / "ga.tif", cv::IMREAD_UNCHANGED).channels(), 1) << "OpenCV drops the alpha";
  expect_error([&] { load_samples(dir / "ga.tif"); }, dir / "ga.tif", "2 samples per pixel (gray + alpha)");
}

// A gray or RGB PNG's tRNS colour key is transparency that OpenCV ignores: it becomes alpha.
TEST(ImageIo, PngColourKeyBecomesAlpha) {
  TempDir dir;
  cv::Mat gray = random_mat(6, 9, CV_8UC1, 5);
  gray.at<uint8_t>(2, 3) = 77;
  gray.setTo(78, gray == 77);
  gray.at<uint8_t>(2, 3) = 77;
  gray.at<uint8_t>(5, 8) = 77;
  write_bytes(dir / "key.png", with_png_chunk(png_bytes(gray), "tRNS", std::string("\0\x4d", 2)));  // key 77
  ASSERT_EQ(cv::imread(dir / "key.png", cv::IMREAD_UNCHANGED).channels(), 1) << "OpenCV ignores the key";
  const ImageSamples samples = load_samples(dir / "key.png");
  ASSERT_FALSE(samples.alpha.empty());
  EXPECT_TRUE(mats_equal(samples.color, gray));
  EXPECT_EQ(cv::countNonZero(samples.alpha == 0), 2);
  EXPECT_EQ(samples.alpha.at<uint8_t>(2, 3), 0);
  EXPECT_EQ(samples.alpha.at<uint8_t>(0, 0), 255);

  cv::Mat bgr = random_mat(5, 7, CV_16UC3, 6);
  bgr.at<cv::Vec3w>(1, 1) = cv::Vec3w(3, 2, 1);  // B, G, R: the key R=1 G=2 B=3
  write_bytes(dir / "key16.png", with_png_chunk(png_bytes(bgr), "tRNS", std::string("\0\x01\0\x02\0\x03", 6)));
  const ImageData image = load_image(dir / "key16.png");
  ASSERT_EQ(image.alpha.depth(), CV_16U);
  EXPECT_EQ(image.alpha.at<uint16_t>(1, 1), 0);
  EXPECT_EQ(cv::countNonZero(image.alpha == 65535), 5 * 7 - 1);
}

// BMP keeps alpha (a V4 header OpenCV reads back as BGRA); formats without alpha refuse a
// transparent image and drop only an opaque alpha.
TEST(ImageIo, AlphaIsWrittenToBmpAndNeverDroppedSilently) {
  TempDir dir;
  const cv::Mat bgra = random_mat(7, 5, CV_8UC4, 8);
  ImageSamples samples;
  cv::cvtColor(bgra, samples.color, cv::COLOR_BGRA2BGR);
  cv::extractChannel(bgra, samples.alpha, 3);
  save_samples(dir / "a.bmp", samples);
  EXPECT_TRUE(mats_equal(cv::imread(dir / "a.bmp", cv::IMREAD_UNCHANGED), bgra));
  const ImageSamples back = load_samples(dir / "a.bmp");
  EXPECT_TRUE(mats_equal(back.alpha, samples.alpha));
  EXPECT_TRUE(mats_equal(back.color, samples.color));

  for (const char* name : {"a.jpg", "a.ppm", "a.pgm"}) {
    expect_error([&] { save_samples(dir / name, samples); }, dir / name, "transparency");
    EXPECT_FALSE(fs::exists(dir / name)) << name;
    EXPECT_NE(alpha_loss(dir / name, samples.alpha), "");
  }
  EXPECT_EQ(alpha_loss(dir / "a.png", samples.alpha), "");
  ImageSamples opaque = samples;
  opaque.alpha = cv::Mat(7, 5, CV_8U, cv::Scalar(255));
  EXPECT_EQ(alpha_loss(dir / "a.jpg", opaque.alpha), "");
  save_samples(dir / "opaque.jpg", opaque);
  EXPECT_TRUE(fs::exists(dir / "opaque.jpg"));
}

// IfExists::kRefuse keeps a file already at the target, and one that appears while writing.
TEST(ImageIo, WritersCanRefuseToReplaceAnExistingFile) {
  TempDir dir;
  const cv::Mat mat = random_mat(4, 4, CV_8UC3, 9);
  write_bytes(dir / "mine.png", "user data");
  expect_error([&] { save_mat(dir / "mine.png", mat, IfExists::kRefuse); }, dir / "mine.png", "not replacing it");
  EXPECT_EQ(read_bytes(dir / "mine.png"), "user data");
  EXPECT_EQ(dir_entries(dir.path()), std::vector<std::string>{"mine.png"}) << "no temporary left";
  save_mat(dir / "new.png", mat, IfExists::kRefuse);
  EXPECT_TRUE(mats_equal(cv::imread(dir / "new.png", cv::IMREAD_UNCHANGED), mat));
  try {
    write_atomically(dir / "late.txt", [&](const std::string& tmp) {
      write_bytes(dir / "late.txt", "appeared meanwhile");
      write_bytes(tmp, "ours");
    }, IfExists::kRefuse);
    ADD_FAILURE() << "replaced a file that appeared while writing";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
  }
  EXPECT_EQ(read_bytes(dir / "late.txt"), "appeared meanwhile");
  save_mat(dir / "mine.png", mat);  // the default replaces
  EXPECT_TRUE(mats_equal(cv::imread(dir / "mine.png", cv::IMREAD_UNCHANGED), mat));
}

}  // namespace
}  // namespace bottleneck

#include "data/fashion_mnist.h"

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "util/error.h"
#include "test_util.h"

namespace bottleneck {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

// An IDX file: magic, sizes, then `data` (which tests may cut short or extend).
std::string idx(uint32_t magic, const std::vector<uint32_t>& dims, const std::string& data) {
  std::string out = be32(magic);
  for (uint32_t d : dims) out += be32(d);
  return out + data;
}

std::string ramp(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 37) % 256);
  return s;
}

void write_raw(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

void expect_error(const std::function<void()>& fn, const std::string& text) {
  try {
    fn();
    ADD_FAILURE() << "no error, expected: " << text;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what() << "\n  expected: " << text;
  }
}

void check_images(const torch::Tensor& images, const std::string& data) {
  ASSERT_EQ(images.sizes(), torch::IntArrayRef({3, 1, 4, 5}));
  ASSERT_EQ(images.scalar_type(), torch::kFloat);
  auto flat = images.flatten();
  for (int64_t i = 0; i < flat.numel(); ++i)
    ASSERT_FLOAT_EQ(flat[i].item<float>(), static_cast<unsigned char>(data[i]) / 255.0f) << i;
}

TEST(FashionMnist, ReadsRawAndGzippedIdxImages) {
  TempDir dir;
  std::string data = ramp(3 * 4 * 5);
  std::string file = idx(0x803, {3, 4, 5}, data);
  write_raw(dir / "raw-idx3-ubyte", file);
  write_gz(dir / "gz-idx3-ubyte.gz", file);
  check_images(read_idx_images(dir / "raw-idx3-ubyte"), data);
  check_images(read_idx_images(dir / "gz-idx3-ubyte.gz"), data);
}

TEST(FashionMnist, ReadsLabels) {
  TempDir dir;
  write_gz(dir / "labels.gz", idx(0x801, {4}, std::string{0, 9, 3, 7}));
  auto labels = read_idx_labels(dir / "labels.gz");
  ASSERT_EQ(labels.scalar_type(), torch::kLong);
  EXPECT_TRUE(torch::equal(labels, torch::tensor({0, 9, 3, 7}, torch::kLong)));
}

TEST(FashionMnist, RejectsBadFiles) {
  TempDir dir;
  std::string data = ramp(40);
  write_raw(dir / "short", idx(0x803, {2, 4, 5}, data.substr(0, 39)));
  expect_error([&] { read_idx_images(dir / "short"); }, dir / "short" + ": truncated: expected 40 bytes of data, found 39");
  write_gz(dir / "short.gz", idx(0x803, {2, 4, 5}, data.substr(0, 17)));
  expect_error([&] { read_idx_images(dir / "short.gz"); }, "truncated: expected 40 bytes of data, found 17");
  write_raw(dir / "long", idx(0x803, {2, 4, 5}, data + "x"));
  expect_error([&] { read_idx_images(dir / "long"); }, "trailing data");
  write_raw(dir / "labels", idx(0x801, {40}, data));
  expect_error([&] { read_idx_images(dir / "labels"); }, "magic 0x00000801, expected 0x00000803");
  expect_error([&] { read_idx_labels(dir / "long"); }, "magic 0x00000803, expected 0x00000801");
  write_raw(dir / "header", idx(0x803, {2}, ""));
  expect_error([&] { read_idx_images(dir / "header"); }, "truncated");
  expect_error([&] { read_idx_images(dir / "missing"); }, dir / "missing" + ": no such file");
  // A header claiming 4 G x 4 G x 4 G bytes is refused before anything is allocated.
  write_raw(dir / "huge", idx(0x803, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, ""));
  expect_error([&] { read_idx_images(dir / "huge"); }, "IDX header announces more than");
}

TEST(FashionMnist, ReadsASplitFromADirectory) {
  TempDir dir;
  std::string data = ramp(3 * 28 * 28);
  write_gz(dir / "t10k-images-idx3-ubyte.gz", idx(0x803, {3, 28, 28}, data));
  write_raw(dir / "t10k-labels-idx1-ubyte", idx(0x801, {3}, std::string{1, 2, 3}));
  LabelledImages split = read_fashion_mnist(dir.path(), false);
  EXPECT_EQ(split.images.sizes(), torch::IntArrayRef({3, 1, 28, 28}));
  EXPECT_TRUE(torch::equal(split.labels, torch::tensor({1, 2, 3}, torch::kLong)));
  expect_error([&] { read_fashion_mnist(dir.path(), true); }, "train-images-idx3-ubyte.gz: no such file");
  write_raw(dir / "t10k-labels-idx1-ubyte", idx(0x801, {2}, std::string{1, 2}));
  expect_error([&] { read_fashion_mnist(dir.path(), false); }, "2 labels for 3 images");
}

TEST(FashionMnist, RealTestSplit) {
  std::error_code ec;
  if (!fs::is_directory(kFashionMnistDir, ec)) GTEST_SKIP() << kFashionMnistDir << " not installed";
  LabelledImages split = read_fashion_mnist(kFashionMnistDir, false);
  EXPECT_EQ(split.images.sizes(), torch::IntArrayRef({10000, 1, 28, 28}));
  EXPECT_EQ(split.labels.sizes(), torch::IntArrayRef({10000}));
  EXPECT_EQ(split.labels.min().item<int64_t>(), 0);
  EXPECT_EQ(split.labels.max().item<int64_t>(), 9);
  EXPECT_GE(split.images.min().item<float>(), 0.0f);
  EXPECT_LE(split.images.max().item<float>(), 1.0f);
  // The test split is balanced: 1000 images per class.
  EXPECT_TRUE(torch::equal(torch::bincount(split.labels), torch::full({10}, 1000, torch::kLong)));
}

}  // namespace
}  // namespace bottleneck

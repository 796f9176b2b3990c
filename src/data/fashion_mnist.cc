#include "data/fashion_mnist.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include <torch/torch.h>

#include "util/error.h"
#include "util/errno_text.h"

// IDX format (http://yann.lecun.com/exdb/mnist/): a big-endian 32-bit magic 0x0000TTDD, where
// TT = 0x08 is unsigned-byte data and DD the number of dimensions, then DD big-endian 32-bit
// sizes, then the samples in row-major order and nothing else. The files may be gzip-compressed;
// gzread reads raw files transparently.

namespace bottleneck {
namespace fs = std::filesystem;

namespace {

constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;
// Refuses absurd headers before allocating: far above the 47 MB of the Fashion-MNIST train set.
constexpr uint64_t kMaxDataBytes = uint64_t(1) << 32;

class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path) {
    std::error_code ec;
    fs::file_status st = fs::status(path, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) throw Error(path, ec.message());
    if (!fs::exists(st)) throw Error(path, "no such file");
    if (fs::is_directory(st)) throw Error(path, "is a directory");
    errno = 0;
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) throw Error(path, std::string("cannot open: ") + (errno ? errno_text(errno) : "out of memory"));
  }
  ~GzFile() { gzclose(file_); }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  // Reads up to n bytes; returns how many were read (fewer only at the end of the data).
  uint64_t read(void* out, uint64_t n) {
    uint64_t done = 0;
    auto* p = static_cast<unsigned char*>(out);
    while (done < n) {
      unsigned chunk = static_cast<unsigned>(std::min<uint64_t>(n - done, 1u << 30));
      int got = gzread(file_, p + done, chunk);
      if (got < 0) {
        int code = 0;
        const char* message = gzerror(file_, &code);
        throw Error(path_, std::string("corrupt compressed data: ") + (message ? message : "gzread failed"));
      }
      if (got == 0) break;
      done += static_cast<uint64_t>(got);
    }
    return done;
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

// Reads the header and the samples of an unsigned-byte IDX file with the given magic.
torch::Tensor read_idx(const std::string& path, uint32_t magic, const char* what) {
  GzFile file(path);
  unsigned char head[4];
  uint64_t got = file.read(head, 4);
  if (got < 4) throw Error(path, "truncated: no IDX header");
  uint32_t found = (uint32_t(head[0]) << 24) | (uint32_t(head[1]) << 16) | (uint32_t(head[2]) << 8) | head[3];
  if (found != magic) {
    char text[96];
    std::snprintf(text, sizeof text, "not an IDX %s file: magic 0x%08x, expected 0x%08x", what,
                  static_cast<unsigned>(found), static_cast<unsigned>(magic));
    throw Error(path, text);
  }
  int ndims = head[3];
  std::vector<int64_t> dims;
  uint64_t total = 1;
  for (int d = 0; d < ndims; ++d) {
    unsigned char b[4];
    if (file.read(b, 4) < 4) throw Error(path, "truncated: incomplete IDX header");
    uint64_t size = (uint64_t(b[0]) << 24) | (uint64_t(b[1]) << 16) | (uint64_t(b[2]) << 8) | b[3];
    total *= size;
    if (total > kMaxDataBytes)
      throw Error(path, "IDX header announces more than " + std::to_string(kMaxDataBytes) + " bytes");
    dims.push_back(static_cast<int64_t>(size));
  }
  torch::Tensor data = torch::empty(dims, torch::kUInt8);
  got = file.read(data.data_ptr<uint8_t>(), total);
  if (got < total)
    throw Error(path, "truncated: expected " + std::to_string(total) + " bytes of data, found " + std::to_string(got));
  unsigned char extra;
  if (file.read(&extra, 1) != 0)
    throw Error(path, "trailing data after the " + std::to_string(total) + " bytes the header announces");
  return data;
}

std::string find_file(const std::string& dir, const std::string& name) {
  for (const std::string& candidate : {name + ".gz", name}) {
    std::string path = (fs::path(dir) / candidate).string();
    std::error_code ec;
    if (fs::exists(path, ec)) return path;
  }
  throw Error((fs::path(dir) / (name + ".gz")).string(), "no such file (nor without .gz)");
}

}  // namespace

torch::Tensor read_idx_images(const std::string& path) {
  torch::Tensor data = read_idx(path, kImagesMagic, "image");
  return data.unsqueeze(1).to(torch::kFloat).div_(255.0);
}

torch::Tensor read_idx_labels(const std::string& path) {
  return read_idx(path, kLabelsMagic, "label").to(torch::kLong);
}

LabelledImages read_fashion_mnist(const std::string& dir, bool train) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(dir, "no such directory (Fashion-MNIST IDX files expected)");
  std::string prefix = train ? "train" : "t10k";
  std::string images_path = find_file(dir, prefix + "-images-idx3-ubyte");
  std::string labels_path = find_file(dir, prefix + "-labels-idx1-ubyte");
  LabelledImages out;
  out.images = read_idx_images(images_path);
  out.labels = read_idx_labels(labels_path);
  if (out.images.size(0) != out.labels.size(0))
    throw Error(labels_path, std::to_string(out.labels.size(0)) + " labels for " +
                                 std::to_string(out.images.size(0)) + " images in " + images_path);
  if (out.labels.numel() > 0 && out.labels.max().item<int64_t>() > 9)
    throw Error(labels_path, "label " + std::to_string(out.labels.max().item<int64_t>()) +
                                 " outside the classes 0-9");
  return out;
}

}  // namespace bottleneck

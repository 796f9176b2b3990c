#pragma once

// Latent vectors on disk, one row per image: CSV (`file,z0,z1,...`, a header row, file names
// quoted as RFC 4180 when they need it) or NPY (numpy's format, version 1.0: a little-endian
// float32 N x D array in C order, which numpy.load reads without pickle) with the file names,
// one per line, in NAME.npy.files.txt beside it. Torch-free.

#include <string>
#include <vector>

namespace bottleneck {

struct LatentTable {
  std::vector<std::string> files;   // one per row: the image each vector came from
  std::vector<float> values;        // files.size() x dims, row-major
  size_t dims = 0;
};

// "csv" or "npy" from the path's extension; UsageError naming the path otherwise.
std::string latent_format(const std::string& path);

// Writes the table atomically in the format latent_format(path) names (and, for NPY, the
// names file beside it).
void write_latents(const std::string& path, const LatentTable& table);

// Reads what write_latents wrote. An NPY without its names file gets the names "000000",
// "000001", ... Throws Error(path, reason) (kCorrupt) for a damaged file: a bad header, a
// dtype other than little-endian float32, rows of different lengths, a non-number.
LatentTable read_latents(const std::string& path);

// The NPY bytes of a float32 rows x cols array (exposed for tests).
std::string npy_bytes(const std::vector<float>& values, size_t rows, size_t cols);

}  // namespace bottleneck

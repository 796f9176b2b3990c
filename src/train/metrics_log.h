#pragma once

// RUN_DIR/metrics.csv of a training run, for every task: a header of named columns, then one
// row per logged step ("iteration" first). Cells are numbers or empty (not measured on that
// row: validation columns on rows without a validation). Torch-free.

#include <cstdint>
#include <string>
#include <vector>

namespace bottleneck {

class MetricsLog {
 public:
  MetricsLog(std::string path, std::vector<std::string> columns);

  struct Loaded {
    int64_t rows = 0;     // rows kept (iteration <= the one asked for)
    int64_t dropped = 0;  // rows past that iteration: steps the resumed run will redo
    int64_t damaged = 0;  // lines that could not be read, or a header other than ours
    std::string backup;   // with damaged lines: where the file as found was copied, else empty
  };

  // Reads an earlier invocation's rows up to `iteration`. Columns are matched by name, so a file
  // written with fewer or reordered columns keeps what it has. A file with damaged lines is
  // first copied to metrics.damaged-N.csv beside it (write() will replace the original), so no
  // row is lost for good; a missing file loads nothing.
  Loaded load_until(int64_t iteration);

  // Appends a row; `cells` are in columns() order (NaN = empty), a shorter row is padded.
  void add(std::vector<double> cells);
  // Replaces the file atomically with the header and every row.
  void write() const;

  const std::vector<std::string>& columns() const { return columns_; }
  size_t rows() const { return rows_.size(); }
  // Finite values of `column` and their iterations (for curves). Throws Error for an unknown name.
  void series(const std::string& column, std::vector<double>* iterations, std::vector<double>* values) const;
  // The latest finite value of `column`, NaN when none.
  double last(const std::string& column) const;

  static std::string header(const std::vector<std::string>& columns);

 private:
  size_t index_of(const std::string& column) const;

  std::string path_;
  std::vector<std::string> columns_;
  std::vector<std::vector<double>> rows_;
};

}  // namespace bottleneck

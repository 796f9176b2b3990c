#include "train/metrics_log.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "util/atomic_file.h"
#include "util/error.h"
#include "util/text_format.h"

namespace fs = std::filesystem;

namespace bottleneck {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  std::stringstream ss(line);
  while (std::getline(ss, cell, ',')) cells.push_back(cell);
  if (!line.empty() && line.back() == ',') cells.emplace_back();
  return cells;
}

// A cell: empty, or a whole number (std::stod would read "12abc" as 12).
bool parse_cell(const std::string& text, double* value) {
  if (text.empty()) {
    *value = kNaN;
    return true;
  }
  size_t used = 0;
  try {
    *value = std::stod(text, &used);
  } catch (const std::exception&) {
    return false;
  }
  return used == text.size();
}

}  // namespace

MetricsLog::MetricsLog(std::string path, std::vector<std::string> columns)
    : path_(std::move(path)), columns_(std::move(columns)) {
  if (columns_.empty() || columns_.front() != "iteration")
    throw Error("metrics columns must start with \"iteration\"");
}

std::string MetricsLog::header(const std::vector<std::string>& columns) {
  std::string h;
  for (size_t i = 0; i < columns.size(); ++i) h += (i ? "," : "") + columns[i];
  return h;
}

size_t MetricsLog::index_of(const std::string& column) const {
  const auto it = std::find(columns_.begin(), columns_.end(), column);
  if (it == columns_.end()) throw Error(path_, "no metrics column \"" + column + "\"");
  return static_cast<size_t>(it - columns_.begin());
}

MetricsLog::Loaded MetricsLog::load_until(int64_t iteration) {
  Loaded loaded;
  std::ifstream in(path_, std::ios::binary);
  if (!in) return loaded;
  std::string line;
  if (!std::getline(in, line)) return loaded;
  // Where each of the file's columns goes in ours (npos: a column we no longer write).
  std::vector<size_t> target;
  for (const auto& name : split(line)) {
    const auto it = std::find(columns_.begin(), columns_.end(), name);
    target.push_back(it == columns_.end() ? std::string::npos : static_cast<size_t>(it - columns_.begin()));
  }
  const bool header_ok = !target.empty() && target.front() == 0;
  if (!header_ok) ++loaded.damaged;
  while (header_ok && std::getline(in, line)) {
    if (line.empty()) continue;
    const std::vector<std::string> cells = split(line);
    std::vector<double> row(columns_.size(), kNaN);
    bool ok = cells.size() == target.size();
    for (size_t i = 0; ok && i < cells.size(); ++i) {
      double v = kNaN;
      ok = parse_cell(cells[i], &v);
      if (ok && target[i] != std::string::npos) row[target[i]] = v;
    }
    ok = ok && std::isfinite(row[0]);
    if (!ok) {
      ++loaded.damaged;
      continue;
    }
    if (row[0] > static_cast<double>(iteration)) {
      ++loaded.dropped;
      continue;
    }
    rows_.push_back(std::move(row));
    ++loaded.rows;
  }
  if (loaded.damaged > 0) {
    // Keep the file as found: write() is about to replace it with the rows that could be read.
    const fs::path p(path_);
    for (int n = 1;; ++n) {
      const fs::path backup = p.parent_path() / ("metrics.damaged-" + std::to_string(n) + ".csv");
      std::error_code ec;
      if (fs::exists(backup, ec)) continue;
      write_file_atomically(backup.string(), read_file(path_));
      loaded.backup = backup.string();
      break;
    }
  }
  return loaded;
}

void MetricsLog::add(std::vector<double> cells) {
  if (cells.size() > columns_.size())
    throw Error(path_, "a metrics row of " + std::to_string(cells.size()) + " cells for " +
                           std::to_string(columns_.size()) + " columns");
  cells.resize(columns_.size(), kNaN);
  rows_.push_back(std::move(cells));
}

void MetricsLog::write() const {
  std::ostringstream out;
  out << header(columns_) << "\n";
  for (const auto& r : rows_) {
    out << static_cast<int64_t>(r[0]);
    for (size_t i = 1; i < r.size(); ++i) out << "," << csv_cell(r[i]);
    out << "\n";
  }
  write_file_atomically(path_, out.str());
}

void MetricsLog::series(const std::string& column, std::vector<double>* iterations, std::vector<double>* values) const {
  const size_t k = index_of(column);
  iterations->clear();
  values->clear();
  for (const auto& r : rows_)
    if (std::isfinite(r[k])) iterations->push_back(r[0]), values->push_back(r[k]);
}

double MetricsLog::last(const std::string& column) const {
  const size_t k = index_of(column);
  for (auto r = rows_.rbegin(); r != rows_.rend(); ++r)
    if (std::isfinite((*r)[k])) return (*r)[k];
  return kNaN;
}

}  // namespace bottleneck

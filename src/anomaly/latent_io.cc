#include "anomaly/latent_io.h"

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "util/atomic_file.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace bottleneck {
namespace {

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr char kNamesSuffix[] = ".files.txt";

std::string lower_extension(const std::string& path) {
  std::string e = fs::path(path).extension().string();
  for (char& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

// RFC 4180: a cell with a comma, quote or line break is quoted, quotes doubled.
std::string csv_text(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// The cells of the CSV record starting at `pos`; advances pos past it. False at the end.
bool csv_record(const std::string& text, size_t& pos, std::vector<std::string>* cells, const std::string& path) {
  cells->clear();
  if (pos >= text.size()) return false;
  std::string cell;
  bool quoted = false;
  for (;;) {
    if (pos >= text.size()) {
      if (quoted) throw Error(ErrorKind::kCorrupt, path, "unterminated quoted cell");
      cells->push_back(cell);
      return true;
    }
    const char c = text[pos++];
    if (quoted) {
      if (c == '"') {
        if (pos < text.size() && text[pos] == '"') {
          cell += '"';
          ++pos;
        } else {
          quoted = false;
        }
      } else {
        cell += c;
      }
    } else if (c == '"' && cell.empty()) {
      quoted = true;
    } else if (c == ',') {
      cells->push_back(cell);
      cell.clear();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && pos < text.size() && text[pos] == '\n') ++pos;
      cells->push_back(cell);
      return true;
    } else {
      cell += c;
    }
  }
}

float parse_float(const std::string& cell, const std::string& path, size_t row) {
  errno = 0;
  char* end = nullptr;
  const float v = std::strtof(cell.c_str(), &end);
  if (cell.empty() || end != cell.c_str() + cell.size() || errno == ERANGE)
    throw Error(ErrorKind::kCorrupt, path, "row " + std::to_string(row) + ": '" + cell + "' is not a number");
  return v;
}

LatentTable read_csv(const std::string& path) {
  const std::string text = read_file(path);
  LatentTable t;
  size_t pos = 0;
  std::vector<std::string> cells;
  if (!csv_record(text, pos, &cells, path) || cells.size() < 2 || cells[0] != "file")
    throw Error(ErrorKind::kCorrupt, path, "not a latents CSV (expected a header 'file,z0,z1,...')");
  t.dims = cells.size() - 1;
  size_t row = 1;
  while (csv_record(text, pos, &cells, path)) {
    ++row;
    if (cells.size() == 1 && cells[0].empty()) continue;  // a blank line
    if (cells.size() != t.dims + 1)
      throw Error(ErrorKind::kCorrupt, path, "row " + std::to_string(row) + " has " + std::to_string(cells.size() - 1) +
                                                 " values, the header " + std::to_string(t.dims));
    t.files.push_back(cells[0]);
    for (size_t i = 1; i < cells.size(); ++i) t.values.push_back(parse_float(cells[i], path, row));
  }
  return t;
}

// The value of `key` in a NPY header dict ("'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }").
std::string header_value(const std::string& header, const std::string& key, const std::string& path) {
  const size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) throw Error(ErrorKind::kCorrupt, path, "NPY header has no '" + key + "'");
  size_t v = header.find(':', k);
  if (v == std::string::npos) throw Error(ErrorKind::kCorrupt, path, "damaged NPY header");
  ++v;
  while (v < header.size() && header[v] == ' ') ++v;
  size_t end = v;
  if (v < header.size() && header[v] == '(') {
    end = header.find(')', v);
    if (end == std::string::npos) throw Error(ErrorKind::kCorrupt, path, "damaged NPY header");
    return header.substr(v, end - v + 1);
  }
  end = header.find(',', v);
  return header.substr(v, end == std::string::npos ? std::string::npos : end - v);
}

LatentTable read_npy(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() < 10 || bytes.compare(0, 6, kNpyMagic, 6) != 0)
    throw Error(ErrorKind::kCorrupt, path, "not an NPY file (bad magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8;
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw Error(ErrorKind::kCorrupt, path, "truncated NPY header");
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    throw Error(ErrorKind::kUnsupported, path, "NPY version " + std::to_string(major) + " is not one this build reads");
  }
  if (offset + header_len > bytes.size()) throw Error(ErrorKind::kCorrupt, path, "truncated NPY header");
  const std::string header = bytes.substr(offset, header_len);
  const std::string descr = header_value(header, "descr", path);
  if (descr != "'<f4'")
    throw Error(ErrorKind::kUnsupported, path, "NPY dtype " + descr + " (expected little-endian float32, '<f4')");
  if (header_value(header, "fortran_order", path) != "False")
    throw Error(ErrorKind::kUnsupported, path, "NPY array in Fortran order (expected C order)");
  const std::string shape = header_value(header, "shape", path);
  std::vector<size_t> dims;
  std::stringstream ss(shape.substr(1, shape.size() - 2));
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t a = item.find_first_not_of(' ');
    if (a == std::string::npos) continue;
    char* end = nullptr;
    const unsigned long long d = std::strtoull(item.c_str() + a, &end, 10);
    if (end == item.c_str() + a) throw Error(ErrorKind::kCorrupt, path, "damaged NPY shape " + shape);
    dims.push_back(static_cast<size_t>(d));
  }
  if (dims.size() != 2) throw Error(ErrorKind::kInvalidData, path, "NPY shape " + shape + " is not rows x dims");
  LatentTable t;
  t.dims = dims[1];
  const size_t data = offset + header_len;
  const size_t count = dims[0] * dims[1];
  if (dims[1] != 0 && count / dims[1] != dims[0]) throw Error(ErrorKind::kCorrupt, path, "NPY shape overflows");
  if (bytes.size() - data != count * sizeof(float))
    throw Error(ErrorKind::kCorrupt, path, "NPY data holds " + std::to_string(bytes.size() - data) + " bytes, the shape needs " +
                                               std::to_string(count * sizeof(float)));
  t.values.resize(count);
  std::memcpy(t.values.data(), bytes.data() + data, count * sizeof(float));  // little-endian hosts only (x86, ARM)
  std::error_code ec;
  const std::string names = path + kNamesSuffix;
  if (fs::exists(names, ec)) {
    std::stringstream lines(read_file(names));
    std::string line;
    while (std::getline(lines, line)) t.files.push_back(line);
    if (t.files.size() != dims[0])
      throw Error(ErrorKind::kCorrupt, names, "lists " + std::to_string(t.files.size()) + " files for " +
                                                  std::to_string(dims[0]) + " rows of " + path);
  } else {
    for (size_t i = 0; i < dims[0]; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "%06zu", i);
      t.files.push_back(name);
    }
  }
  return t;
}

}  // namespace

std::string latent_format(const std::string& path) {
  const std::string e = lower_extension(path);
  if (e == ".csv") return "csv";
  if (e == ".npy") return "npy";
  throw UsageError(path, "latents are written as .csv or .npy (the extension picks the format)");
}

std::string npy_bytes(const std::vector<float>& values, size_t rows, size_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  // The header is padded with spaces and ends in a newline so the data starts on a 64-byte
  // boundary (NPY 1.0; numpy itself aligns to 64).
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string out(kNpyMagic, 6);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return out;
}

void write_latents(const std::string& path, const LatentTable& t) {
  const std::string format = latent_format(path);
  if (t.values.size() != t.files.size() * t.dims) throw Error(path, "latent table: rows and values disagree");
  if (format == "npy") {
    std::string names;
    for (const std::string& f : t.files) {
      if (f.find('\n') != std::string::npos)
        throw Error(ErrorKind::kInvalidData, f, "a file name with a line break cannot be listed in " + path + kNamesSuffix);
      names += f + "\n";
    }
    write_file_atomically(path + kNamesSuffix, names);
    write_file_atomically(path, npy_bytes(t.values, t.files.size(), t.dims));
    return;
  }
  std::ostringstream s;
  s.precision(9);  // float32 round-trips through 9 significant digits
  s << "file";
  for (size_t i = 0; i < t.dims; ++i) s << ",z" << i;
  s << "\n";
  for (size_t r = 0; r < t.files.size(); ++r) {
    s << csv_text(t.files[r]);
    for (size_t i = 0; i < t.dims; ++i) s << "," << t.values[r * t.dims + i];
    s << "\n";
  }
  write_file_atomically(path, s.str());
}

LatentTable read_latents(const std::string& path) {
  return latent_format(path) == "npy" ? read_npy(path) : read_csv(path);
}

}  // namespace bottleneck

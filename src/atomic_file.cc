#include "atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "error.h"

namespace fs = std::filesystem;

namespace bottleneck {

namespace {
// strerror text in the lower case our messages use ("permission denied").
std::string reason(int err) {
  std::string text = std::strerror(err);
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

std::string temp_name_for(const fs::path& target) {
  // pid + counter keep concurrent writers (threads or processes) off each other's temp files;
  // the leading dot keeps half-written files out of image listings.
  static std::atomic<unsigned> counter{0};
  std::string name = "." + target.stem().string() + ".tmp-" + std::to_string(getpid()) + "-" +
                     std::to_string(counter++) + target.extension().string();
  return (target.parent_path() / name).string();
}
}  // namespace

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  const fs::path target(path);
  const std::string tmp = temp_name_for(target);
  try {
    write(tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw Error(path, "cannot replace the file: " + reason(ec.value()));
  }
}

void write_file_atomically(const std::string& path, const void* data, size_t size) {
  write_atomically(path, [&](const std::string& tmp) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) throw Error(path, "cannot create a file in " + fs::path(path).parent_path().string() + ": " + reason(errno));
    auto fail = [&](int err) {
      ::close(fd);
      throw Error(path, "write failed: " + reason(err));
    };
    const char* p = static_cast<const char*>(data);
    size_t left = size;
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail(errno);
      p += n;
      left -= static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0 && errno != EINVAL) fail(errno);
    if (::close(fd) != 0) throw Error(path, "write failed: " + reason(errno));
  });
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path, "no such file");
  if (fs::is_directory(path, ec)) throw Error(path, "is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open: " + reason(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace bottleneck

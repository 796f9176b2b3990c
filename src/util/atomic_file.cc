#include "util/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>  // renameat2
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/error.h"
#include "util/errno_text.h"

namespace fs = std::filesystem;

namespace bottleneck {

namespace {

std::string temp_name_for(const fs::path& target) {
  // pid + counter keep concurrent writers (threads or processes) off each other's temp files;
  // the leading dot keeps half-written files out of image listings.
  static std::atomic<unsigned> counter{0};
  std::string name = "." + target.stem().string() + ".tmp-" + std::to_string(getpid()) + "-" +
                     std::to_string(counter++) + target.extension().string();
  return (target.parent_path() / name).string();
}

// The writer's PID if `filename` is named as temp_name_for names temporaries, else 0. Parsed
// from the end: the stem may itself contain ".tmp-", the extension cannot contain a '.'.
long temporary_pid(const std::string& filename) {
  if (filename.size() < 2 || filename[0] != '.') return 0;
  auto digits = [&](size_t from, size_t to) {
    return from < to && std::all_of(filename.begin() + from, filename.begin() + to,
                                    [](unsigned char c) { return std::isdigit(c); });
  };
  for (size_t tag = filename.rfind(".tmp-"); tag != std::string::npos && tag > 0;
       tag = filename.rfind(".tmp-", tag - 1)) {
    const size_t pid = tag + 5;
    const size_t dash = filename.find('-', pid);
    if (dash == std::string::npos || !digits(pid, dash)) continue;
    const size_t ext = std::min(filename.find('.', dash), filename.size());
    if (!digits(dash + 1, ext) || filename.find('.', ext + 1) != std::string::npos) continue;
    if (dash - pid > 9) continue;  // beyond any pid_t
    return std::strtol(filename.c_str() + pid, nullptr, 10);
  }
  return 0;
}
}  // namespace

namespace {
// A rename replaces whatever the name points at: a device node, a FIFO, a socket or a symbolic
// link would be replaced by a regular file (as root: /dev/full). Only regular files are ours to
// replace.
void refuse_to_replace_a_non_regular_file(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(path, ec);
  if (ec || !fs::exists(status)) return;
  const char* what = fs::is_symlink(status)     ? "a symbolic link"
                     : fs::is_directory(status) ? "a directory"
                     : fs::is_fifo(status)      ? "a FIFO"
                     : fs::is_socket(status)    ? "a socket"
                     : fs::is_block_file(status) || fs::is_character_file(status) ? "a device"
                     : fs::is_regular_file(status) ? nullptr
                                                    : "not a regular file";
  if (what)
    throw Error(ErrorKind::kIo, path, std::string("is ") + what + ", not a regular file: refusing to replace it "
                                      "(choose another output path)");
}
}  // namespace

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

void refuse_output_over_input(const std::string& output, const std::vector<std::string>& inputs,
                              const std::string& what) {
  for (const std::string& input : inputs)
    if (!input.empty() && same_file(output, input))
      throw UsageError(output, "the " + what + " is the input " + input + ": refusing to write over it");
}

namespace {
// rename(2) that fails with EEXIST instead of replacing. RENAME_NOREPLACE needs file system
// support (ext4, xfs, btrfs, tmpfs have it; NFS and some FUSE do not): there, link(2) also fails
// on an existing target, atomically; the temporary is then unlinked.
int rename_no_replace(const char* from, const char* to) {
  if (::renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) return -1;
  if (::link(from, to) != 0) return -1;
  ::unlink(from);
  return 0;
}
}  // namespace

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write,
                      IfExists if_exists) {
  const fs::path target(path);
  refuse_to_replace_a_non_regular_file(path);
  const std::string tmp = temp_name_for(target);
  try {
    write(tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  std::error_code ec;
  // Again just before the rename: the check above ran before the (possibly long) write.
  try {
    refuse_to_replace_a_non_regular_file(path);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  if (if_exists == IfExists::kRefuse) {
    if (rename_no_replace(tmp.c_str(), path.c_str()) == 0) return;
    const int err = errno;
    fs::remove(tmp, ec);
    if (err == EEXIST)
      throw Error(ErrorKind::kIo, path, "already exists (it appeared while the job ran): not replacing it");
    throw Error(ErrorKind::kIo, path, "cannot create the file: " + errno_text(err));
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw Error(path, "cannot replace the file: " + errno_text(ec.value()));
  }
}

void write_file_atomically(const std::string& path, const void* data, size_t size, IfExists if_exists) {
  write_atomically(path, [&](const std::string& tmp) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) throw Error(path, "cannot create a file in " + fs::path(path).parent_path().string() + ": " + errno_text(errno));
    auto fail = [&](int err) {
      ::close(fd);
      throw Error(path, "write failed: " + errno_text(err));
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
    if (::close(fd) != 0) throw Error(path, "write failed: " + errno_text(errno));
  }, if_exists);
}

bool is_atomic_temporary(const std::string& filename) { return temporary_pid(filename) > 0; }

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  std::vector<fs::path> stale;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code ignored;
    if (!is_atomic_temporary(name) || !it->is_regular_file(ignored) || it->is_symlink(ignored)) continue;
    const long pid = temporary_pid(name);
    // kill(pid, 0) probes without sending anything; only "no such process" proves the writer is
    // gone (EPERM means it runs under another user). A live PID may be a reused one, whose
    // stale file then stays until a later run: a leftover is harmless, a deleted in-flight
    // temporary is a failed write.
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    stale.push_back(it->path());
  }
  std::vector<std::string> removed;
  for (const fs::path& p : stale) {
    std::error_code ignored;
    if (fs::remove(p, ignored)) removed.push_back(p.string());
  }
  return removed;
}

void require_regular_file(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) throw Error(path, "no such file");
  if (fs::is_directory(status)) throw Error(path, "is a directory");
  if (fs::is_regular_file(status)) return;
  const char* what = fs::is_fifo(status)     ? "a FIFO"
                     : fs::is_socket(status) ? "a socket"
                     : fs::is_block_file(status) || fs::is_character_file(status) ? "a device"
                                                                                  : "of an unknown type";
  throw Error(ErrorKind::kIo, path, std::string("is ") + what + ", not a regular file: only regular files are read");
}

std::string read_file(const std::string& path) {
  require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot open: " + errno_text(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace bottleneck

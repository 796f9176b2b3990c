#include "train/run_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "util/atomic_file.h"
#include "util/errno_text.h"
#include "util/error.h"
#include "util/file_jobs.h"

namespace fs = std::filesystem;

namespace bottleneck {

RunDirectory::RunDirectory(const Options& o, const Logger& log) : dir_(o.dir), writer_(o.writer) {
  // A process that writes nothing (a rank other than 0) checks nothing either: on another
  // machine the directory may not exist, and rank 0 makes every check for the run.
  if (!writer_) return;
  const std::string last = path("last.ckpt");
  std::error_code ec;
  if (!o.resume && fs::exists(last, ec))
    throw UsageError(dir_ + " already holds a run (last.ckpt): continue it with --resume " + dir_ +
                     ", or choose another run directory");
  if (o.resume && !fs::exists(last, ec)) throw Error(last, "nothing to resume: no checkpoint in the run directory");
  const fs::path run = resolved(dir_);
  for (const auto& [what, input] : o.inputs) {
    if (input.empty()) continue;
    if (is_inside(run, resolved(input)))
      throw UsageError("the run directory " + dir_ + " lies inside the " + what + " " + input +
                       ": its samples and curves would be read as images; choose a run directory outside it");
  }
  fs::create_directories(dir_, ec);
  for (const auto& sub : o.subfolders)
    if (!ec) fs::create_directories(path(sub), ec);
  if (ec) throw Error(ErrorKind::kIo, dir_, "cannot create the run directory: " + ec.message());
  // flock on the directory itself: nothing to clean up after a crash, and released by the
  // kernel when the process dies, so a killed run never locks its successor out.
  lock_fd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock_fd_ < 0) throw Error(ErrorKind::kIo, dir_, "cannot open the run directory: " + errno_text(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    if (err == EWOULDBLOCK)
      throw Error(ErrorKind::kInvalidData, dir_,
                  "another process is training in this run directory; wait for it to stop, or choose another");
    throw Error(ErrorKind::kIo, dir_, "cannot lock the run directory: " + errno_text(err));
  }
  // Only after the lock: the temporaries of a live writer are not stale.
  const std::vector<std::string> stale = remove_stale_temporaries(dir_);
  if (!stale.empty()) log.info("removed ", stale.size(), " temporary file(s) of an interrupted run from ", dir_);
}

RunDirectory::~RunDirectory() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void RunDirectory::write(const std::string& name, const std::function<void(const std::string& path)>& write) const {
  if (writer_) write(path(name));
}

void RunDirectory::write_text(const std::string& name, const std::string& contents) const {
  write(name, [&](const std::string& p) { write_file_atomically(p, contents); });
}

}  // namespace bottleneck

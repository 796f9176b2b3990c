#pragma once

// The run directory of a training run, for every task: created or reopened, locked against a
// second process, cleaned of an interrupted run's temporaries, and the one place the run's files
// are written through (so that in a multi-process run only one process writes). Torch-free.

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "util/log.h"

namespace bottleneck {

class RunDirectory {
 public:
  struct Options {
    std::string dir;
    bool resume = false;  // reopen a run (dir/last.ckpt must exist) instead of starting one
    // Folders the run reads, with what they are ("training folder", ...): the run directory may
    // not lie inside one (its PNGs would be read as images by the next run on the folder).
    std::vector<std::pair<std::string, std::string>> inputs;
    std::vector<std::string> subfolders;  // created with the directory ("samples")
    bool writer = true;                   // false: this process writes nothing (not rank 0)
  };

  // Throws UsageError for a new run over an existing one or a directory inside an input, Error
  // for nothing to resume, a directory that cannot be created, or one another process holds.
  RunDirectory(const Options& options, const Logger& log);
  ~RunDirectory();
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;

  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  bool writes() const { return writer_; }

  // Runs write(path(name)) if this process writes the run's files; the writer itself must
  // replace the file atomically (util/atomic_file.h).
  void write(const std::string& name, const std::function<void(const std::string& path)>& write) const;
  void write_text(const std::string& name, const std::string& contents) const;

 private:
  std::string dir_;
  bool writer_ = true;
  int lock_fd_ = -1;
};

}  // namespace bottleneck

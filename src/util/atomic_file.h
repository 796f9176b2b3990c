#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace bottleneck {

// Writes `path` so that readers (and a process killed half-way) only ever see the old file or
// the complete new one: `write` is called with a temporary path in the same directory (same
// file system, so the final rename is atomic) that keeps the extension of `path`, because
// encoders such as cv::imwrite choose the format from it. If `write` throws, the temporary is
// removed and the exception propagates; a failed rename throws Error(path, reason).
//
// What happens to a regular file already at `path`: kReplace replaces it; kRefuse leaves it and
// throws Error(kIo) naming it. kRefuse is decided by the final rename itself (renameat2's
// RENAME_NOREPLACE, or link(2) where the file system lacks it), so a file that appears while
// `write` runs (another job, the user) is kept too, not only one that existed before.
enum class IfExists { kReplace, kRefuse };
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& write,
                      IfExists if_exists = IfExists::kReplace);

// write_atomically replaces only regular files: a target that is a symbolic link, a device, a
// FIFO, a socket or a directory is an Error (kind kIo) naming it, before anything is written.

// Whether two paths name the same file (device and inode, so hard links, bind mounts and
// "a/../b" spellings count); false when either does not exist.
bool same_file(const std::string& a, const std::string& b);

// Throws UsageError when `output` is the same file as one of `inputs` (a job must not write over
// what it reads), naming both.
void refuse_output_over_input(const std::string& output, const std::vector<std::string>& inputs,
                              const std::string& what = "output");

// Same, for bytes already in memory; also fsyncs the data before the rename, so after a crash
// the file holds either the old or the new contents, never a hole.
void write_file_atomically(const std::string& path, const void* data, size_t size,
                           IfExists if_exists = IfExists::kReplace);
inline void write_file_atomically(const std::string& path, const std::string& contents,
                                  IfExists if_exists = IfExists::kReplace) {
  write_file_atomically(path, contents.data(), contents.size(), if_exists);
}

// Whether `filename` (a name, not a path) is one of write_atomically's temporaries:
// ".STEM.tmp-PID-N.EXT", with EXT possibly empty.
bool is_atomic_temporary(const std::string& filename);

// Removes the temporaries that killed writers (SIGKILL, power loss) left under `dir`
// (recursively, without following links to folders), and only those: files named like
// is_atomic_temporary whose PID is not a running process, so a job writing into the same folder
// at the same time keeps its own. Best effort: folders that cannot be listed and files that
// cannot be removed are left alone. Returns the paths removed.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

// Throws Error naming `path` unless it is a regular file (or a link to one): "no such file", "is
// a directory", or kIo "is a FIFO (a device, a socket), not a regular file". Inputs are read
// from regular files only: opening a FIFO waits for a writer forever, a device may never end.
void require_regular_file(const std::string& path);

// Whole file as a string; throws Error(path, reason), require_regular_file's included.
std::string read_file(const std::string& path);

}  // namespace bottleneck

#pragma once

// Planning a job over files and folder trees (`compress`, `decompress`): which files are its
// inputs and where each one's result goes. The rules that keep a job from damaging what it reads
// live here once: outputs mirror each input folder's tree under the output folder, no output may
// be an input (device and inode, so links and other spellings count), two inputs may not map to
// one output, and results of an earlier run inside an input folder are not taken as inputs.
// The denoiser's planner (denoise/denoiser.cc) predates this one and keeps its own, stricter
// rules for outputs that keep the input's name (its --suffix).

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "util/error.h"

namespace bottleneck {

struct FileJob {
  std::string input;     // the file as found (a given path, or a folder's entry)
  std::string relative;  // '/'-separated, relative to its input folder; a lone file: its name
  std::string output;    // where its result goes
  bool in_input_tree = false;  // the output lies in (or is) an input folder, where an existing
                               // file of that name is a user's file, not an earlier result
};

struct FileJobOptions {
  std::vector<std::string> inputs;  // files or folders (searched recursively), at least one
  std::string output;               // the output folder (created as needed); or, for one input
                                    // file, the output file when `names_a_file(output)` says so
  // Lists a folder's input files, sorted; subfolders that cannot be listed go to `unlisted`
  // (e.g. image_io's list_images, or list_files below).
  std::function<std::vector<std::string>(const std::string& root, std::vector<Error>* unlisted)> list;
  // An input's relative path -> its output's relative path ("a/b.png" -> "a/b.bnc").
  std::function<std::string(const std::string& relative)> output_name;
  // Whether `output` names a file rather than a folder (only asked for a single input file that
  // is not a folder, when `output` is not an existing folder).
  std::function<bool(const std::string& output)> names_a_file;
  std::string what = "files";       // what the job reads, for "no FILES found"
};

struct FileJobPlan {
  std::vector<FileJob> jobs;     // inputs in the order given, each folder's files sorted
  std::vector<Error> unlisted;   // subfolders that could not be listed: a failure each
};

// Throws UsageError for layouts that would write over an input or give two inputs one output,
// Error(kInvalidData) when nothing is found, Error for a missing input.
FileJobPlan plan_file_jobs(const FileJobOptions& options);

// Files under `root` (recursively, not following links to folders) whose path `accept` takes,
// sorted; `root` may be a single file. A subfolder that cannot be listed is appended to
// `unlisted` as Error(DIR, "cannot list: REASON") and the listing goes on.
std::vector<std::string> list_files(const std::string& root, const std::function<bool(const std::string&)>& accept,
                                    std::vector<Error>* unlisted);

// Whether `child` is `parent` or lies below it, by path components (both already resolved).
bool is_inside(const std::filesystem::path& child, const std::filesystem::path& parent);
// weakly_canonical that does not throw: a link loop among the inputs is that file's error (its
// reader reports it), not the job's; such a path comes back absolute and normalised instead.
std::filesystem::path resolved(const std::filesystem::path& p);

// Creates the folders above `output` and refuses (Error naming it) one reached through a
// symbolic link that leads out of `output_root`: a link inside the output folder must not carry
// results elsewhere. `output_root` "" (a lone output file) checks nothing but creates the folder.
void make_output_folder(const std::string& output, const std::string& output_root);

}  // namespace bottleneck

#include "util/file_jobs.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>

#include <sys/stat.h>

#include "util/atomic_file.h"

namespace bottleneck {
namespace fs = std::filesystem;

bool is_inside(const fs::path& child, const fs::path& parent) {
  auto c = child.begin();
  for (auto p = parent.begin(); p != parent.end(); ++p, ++c)
    if (c == child.end() || *c != *p) return false;
  return true;
}

fs::path resolved(const fs::path& p) {
  std::error_code ec;
  fs::path r = fs::weakly_canonical(p, ec);
  return ec ? fs::absolute(p, ec).lexically_normal() : r;
}

std::vector<std::string> list_files(const std::string& root, const std::function<bool(const std::string&)>& accept,
                                    std::vector<Error>* unlisted) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    if (!fs::exists(root, ec)) throw Error(root, "no such file or directory");
    return {root};
  }
  std::vector<std::string> files;
  std::vector<Error> bad;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  if (ec) throw Error(root, "cannot list: " + ec.message());
  while (it != end) {
    const fs::path p = it->path();
    std::error_code type_ec;
    if (!it->is_directory(type_ec) && accept(p.string()) && !is_atomic_temporary(p.filename().string()))
      files.push_back(p.string());
    it.increment(ec);
    if (ec) {
      // The entry that could not be entered; the iterator is past it and can go on.
      bad.emplace_back(p.string(), "cannot list: " + ec.message());
      ec.clear();
    }
  }
  std::sort(files.begin(), files.end());
  std::sort(bad.begin(), bad.end(), [](const Error& a, const Error& b) { return a.path() < b.path(); });
  for (Error& e : bad) {
    if (!unlisted) throw e;
    unlisted->push_back(std::move(e));
  }
  return files;
}

FileJobPlan plan_file_jobs(const FileJobOptions& o) {
  if (o.inputs.empty()) throw UsageError("give at least one input file or folder");
  if (o.output.empty()) throw UsageError("give the output (-o FILE or FOLDER)");
  std::error_code ec;
  for (const std::string& in : o.inputs)
    if (!fs::exists(in, ec)) throw Error(in, "no such file or directory");

  const bool single_file = o.inputs.size() == 1 && !fs::is_directory(o.inputs[0], ec);
  const bool output_is_file = single_file && !fs::is_directory(o.output, ec) && o.names_a_file && o.names_a_file(o.output);
  const fs::path out_dir = resolved(output_is_file ? fs::path(o.output).parent_path() : fs::path(o.output));

  FileJobPlan plan;
  std::vector<std::string> all_inputs;
  for (const std::string& in : o.inputs) {
    const bool folder = fs::is_directory(in, ec);
    const fs::path in_dir = resolved(folder ? fs::path(in) : fs::path(in).parent_path().empty() ? "." : fs::path(in).parent_path());
    const bool overlaps = out_dir == in_dir || (folder && is_inside(out_dir, in_dir));
    const std::vector<std::string> files = folder ? o.list(in, &plan.unlisted) : std::vector<std::string>{in};
    for (const std::string& f : files) {
      // An output folder inside the input folder holds an earlier run's results, not inputs.
      if (folder && out_dir != in_dir && overlaps && is_inside(resolved(f), out_dir)) continue;
      FileJob job;
      job.input = f;
      const fs::path rel = folder ? fs::path(f).lexically_relative(in) : fs::path(f).filename();
      // Listed files lie under their folder; if one ever did not, its output would land outside
      // the output folder.
      if (rel.empty() || rel.is_absolute() || std::find(rel.begin(), rel.end(), "..") != rel.end())
        throw Error(f, "cannot place its output under " + o.output + " (path " + rel.string() + ")");
      job.relative = rel.generic_string();
      job.output = output_is_file ? o.output : (fs::path(o.output) / o.output_name(job.relative)).string();
      job.in_input_tree = overlaps;
      plan.jobs.push_back(std::move(job));
      all_inputs.push_back(f);
    }
  }
  if (plan.jobs.empty() && plan.unlisted.empty())
    throw Error(ErrorKind::kInvalidData, o.inputs.size() == 1 ? o.inputs[0] : "", "no " + o.what + " found");

  // Inputs by device and inode, so that checking every output against every input stays
  // linear in a folder of thousands.
  std::set<std::pair<dev_t, ino_t>> input_ids;
  for (const std::string& f : all_inputs) {
    struct stat st;
    if (::stat(f.c_str(), &st) == 0) input_ids.emplace(st.st_dev, st.st_ino);
  }
  std::map<fs::path, const FileJob*> outputs;
  for (const FileJob& job : plan.jobs) {
    struct stat st;
    if (::stat(job.output.c_str(), &st) == 0 && input_ids.count({st.st_dev, st.st_ino}))
      refuse_output_over_input(job.output, all_inputs);  // throws, naming the input
    const auto [at, fresh] = outputs.emplace(resolved(job.output), &job);
    if (!fresh)
      throw UsageError(job.output + ": both " + at->second->input + " and " + job.input +
                       " would be written here; compress them into separate folders");
  }
  return plan;
}

void make_output_folder(const std::string& output, const std::string& output_root) {
  const fs::path parent = fs::path(output).parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) throw Error(ErrorKind::kIo, parent.string(), "cannot create the folder: " + ec.message());
  if (output_root.empty()) return;
  if (!is_inside(resolved(parent.empty() ? fs::path(".") : parent), resolved(output_root)))
    throw Error(ErrorKind::kIo, output,
                "refusing to write through a symbolic link that leads out of the output folder " + output_root);
}

}  // namespace bottleneck

#include "denoise/denoise_plan.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "image/image_io.h"
#include "util/file_jobs.h"

namespace bottleneck {
namespace fs = std::filesystem;

namespace {

using FileId = std::pair<dev_t, ino_t>;

// Device and inode of what `p` names, following links; nothing if it cannot be stat'ed.
std::optional<FileId> file_id(const fs::path& p) {
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) return std::nullopt;
  return FileId{st.st_dev, st.st_ino};
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Files a previous run wrote into the input tree (outputs beside their inputs, comparisons,
// temporaries of a killed run): not inputs. (An original named like an output, NAME.SUFFIX.EXT,
// is taken for one too: choose another suffix for such a folder.)
bool looks_generated(const fs::path& file, const std::string& suffix) {
  const std::string name = file.filename().string();
  const std::string stem = file.stem().string();
  if (name.size() > 1 && name[0] == '.' && name.find(".tmp-") != std::string::npos) return true;
  if (ends_with(name, ".compare.png")) return true;
  return !suffix.empty() && ends_with(stem, "." + suffix);
}

// Where the output folder lies relative to the input tree. Names cannot tell: a bind mount of
// the input folder (or of one of its subfolders) has a name of its own, so every folder of the
// tree the listing walks is compared by device and inode with the output folder and its
// ancestors (the nearest existing one first, when the output folder does not exist yet).
struct Overlap {
  bool same = false;                // the output folder is the input folder
  bool inside = false;              // ... or lies in it, at any depth (implied by same)
  std::vector<fs::path> out_views;  // the input tree's folders that are the output folder,
                                    // spelt as the listing spells them
};

Overlap find_overlap(const fs::path& input_dir, bool walk_tree, const std::string& output) {
  Overlap overlap;
  const std::optional<FileId> out = file_id(output);
  std::set<FileId> out_and_above;
  for (fs::path p = resolved(output);; p = p.parent_path()) {
    if (const std::optional<FileId> id = file_id(p)) out_and_above.insert(*id);
    if (p == p.parent_path()) break;
  }
  auto visit = [&](const fs::path& dir) {
    const std::optional<FileId> id = file_id(dir);
    if (!id) return;
    if (out && *id == *out) {
      overlap.out_views.push_back(dir);
      if (dir == input_dir) overlap.same = true;
    }
    if (out_and_above.count(*id)) overlap.inside = true;
  };
  visit(input_dir);
  if (!walk_tree) {
    // A lone file's output folder is only in its way when it is the file's own folder.
    overlap.inside = overlap.same;
    return overlap;
  }
  // The folders list_images walks: links to folders are not followed there, nor here.
  std::error_code ec;
  for (fs::recursive_directory_iterator it(input_dir, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    std::error_code ignored;
    if (it->symlink_status(ignored).type() == fs::file_type::directory) visit(it->path());
  }
  return overlap;
}

// An extension's format, spelt one way: "JPEG" and "jpg" are one format.
std::string format_name(std::string ext) {
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == "jpeg") return "jpg";
  if (ext == "tiff") return "tif";
  return ext;
}

std::string role(const DenoiseJob& job, const std::string& path) {
  return path == job.output ? job.path + " (its denoised image)" : job.path + " (its comparison strip)";
}

}  // namespace

DenoisePlan plan_denoise(const DenoiseOptions& o) {
  std::error_code ec;
  const fs::path input(o.input);
  if (!fs::exists(input, ec)) throw Error(o.input, "no such file or directory");
  const bool folder = fs::is_directory(input, ec);
  const fs::path in_dir = folder ? input : input.parent_path().empty() ? fs::path(".") : input.parent_path();
  // `denoise in.png out.png` writes the file out.png; an existing folder stays a folder.
  const bool to_file = !folder && has_image_extension(o.output) && !fs::is_directory(o.output, ec);
  if (to_file && !o.suffix.empty())
    throw UsageError(o.output, "names the output file (an image extension): --suffix names outputs written into a "
                               "folder; drop it, or give a folder as the output");
  if (to_file && !o.format.empty() && format_name(fs::path(o.output).extension().string().substr(1)) != format_name(o.format))
    throw UsageError(o.output, "names the output file, whose extension says its format: --format " + o.format +
                                   " disagrees; drop --format or rename the output");
  // A named output file is where the user asked it to be, even beside its input.
  const Overlap overlap = to_file ? Overlap{} : find_overlap(in_dir, folder, o.output);
  if (overlap.inside && o.suffix.empty())
    throw UsageError(std::string("the output folder ") + (overlap.same ? "is" : "lies inside") +
                     " the input folder; pass --suffix S to write NAME.S.EXT there, or choose another --output");

  DenoisePlan plan;
  plan.output_root = to_file ? "" : o.output;
  std::vector<std::string> files;
  std::set<FileId> input_ids;
  for (const auto& f : folder ? list_images(o.input, &plan.unlisted, &plan.temporaries) : std::vector<std::string>{o.input}) {
    if (overlap.inside) {
      if (looks_generated(f, o.suffix)) continue;
      // An output folder inside the input folder holds an earlier run's results, not inputs.
      if (!overlap.same && std::any_of(overlap.out_views.begin(), overlap.out_views.end(),
                                       [&](const fs::path& view) { return is_inside(f, view); }))
        continue;
    }
    files.push_back(f);
    if (const std::optional<FileId> id = file_id(f)) input_ids.insert(*id);
  }

  std::map<std::string, const DenoiseJob*> targets;  // lexically normal path -> its job
  for (const auto& f : files) {
    DenoiseJob job;
    job.path = f;
    const fs::path rel = folder ? fs::path(f).lexically_relative(input) : fs::path(f).filename();
    // Listed files lie under the input, so this cannot happen; if it ever did, the output
    // would land outside the output folder.
    if (rel.empty() || rel.is_absolute() || std::find(rel.begin(), rel.end(), "..") != rel.end())
      throw Error(f, "cannot place its output under " + o.output + " (path " + rel.string() + ")");
    job.relative = rel.generic_string();
    const std::string stem = rel.stem().string() + (o.suffix.empty() ? "" : "." + o.suffix);
    const fs::path dir = fs::path(o.output) / rel.parent_path();
    job.output = (dir / (stem + (o.format.empty() ? rel.extension().string() : "." + o.format))).string();
    if (o.compare) job.compare = (dir / (stem + ".compare.png")).string();
    if (to_file) {
      const fs::path out(o.output);
      job.output = o.output;
      if (o.compare) job.compare = (out.parent_path() / (out.stem().string() + ".compare.png")).string();
    }
    plan.jobs.push_back(std::move(job));
  }
  if (plan.jobs.empty())
    throw Error(o.input, folder ? "no images found (png jpg jpeg bmp tif tiff webp pgm ppm pnm)" : "nothing to do");

  std::vector<std::string> existing;
  for (const DenoiseJob& job : plan.jobs) {
    for (const std::string* target : {&job.output, &job.compare}) {
      if (target->empty()) continue;
      // Whatever the layout, never write over an input (a hard link or a bind mount is one).
      const std::optional<FileId> id = file_id(*target);
      if (id && input_ids.count(*id))
        for (const auto& f : files)
          if (file_id(f) == id)
            throw UsageError(*target, "would overwrite the input " + f + "; use --suffix or another --output");
      const auto [at, fresh] = targets.emplace(fs::path(*target).lexically_normal().string(), &job);
      if (!fresh)
        throw UsageError(*target, "two inputs would be written here: " + role(*at->second, *target) + " and " +
                                      role(job, *target) + "; rename one of them or write them to separate folders");
      std::error_code ignored;
      if (fs::exists(fs::symlink_status(*target, ignored))) existing.push_back(*target);
    }
  }
  // A file already where the job would write was not written by this job: it may be the
  // user's (S/a.dn.png beside S/a.png). An earlier run's results are replaced only when the
  // user says so, as a rerun with other settings needs; --skip-existing keeps them.
  if (!existing.empty() && !o.overwrite && !o.skip_existing)
    throw UsageError(existing.front(),
                     "already exists" +
                         (existing.size() > 1 ? " (as do " + std::to_string(existing.size() - 1) + " more of this job's outputs)"
                                              : std::string()) +
                         "; denoise replaces no file it has not written itself: pass --overwrite to replace them, "
                         "or --skip-existing to keep them and denoise the rest");
  return plan;
}

}  // namespace bottleneck

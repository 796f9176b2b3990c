#include "inference/shipped_models.h"

#include <filesystem>
#include <system_error>

#include "util/error.h"

namespace bottleneck {
namespace fs = std::filesystem;

bool is_shipped_family(const std::string& name) { return name == "gaussian" || name == "photo"; }

std::string shipped_family_of(const std::string& model_option) {
  std::error_code ec;
  return is_shipped_family(model_option) && !fs::exists(model_option, ec) ? model_option : "";
}

namespace {
bool shipped_file_exists(const std::string& name) {
  std::error_code ec;
  for (const std::string& dir : shipped_model_dirs())
    if (fs::is_regular_file(fs::path(dir) / name, ec)) return true;
  return false;
}
}  // namespace

std::string shipped_model_name(int channels, const std::string& family) {
  if (!family.empty() && !is_shipped_family(family))
    throw UsageError("unknown shipped model \"" + family + "\": expected photo or gaussian");
  if (channels == 1) return "denoise-gray.pt";
  if (family == "photo" || (family.empty() && shipped_file_exists("denoise-photo.pt"))) return "denoise-photo.pt";
  return "denoise-color.pt";
}

std::vector<std::string> shipped_model_dirs() {
  // The running executable, not argv[0] or the working directory: `bottleneck` is found the
  // same way whether it was started by path, through PATH or through a symlink.
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  const fs::path dir = exe.parent_path();
  return {(dir / "models").string(), (dir.parent_path() / "share" / "bottleneck" / "models").string()};
}

std::string shipped_model(int channels, const std::string& family) {
  const std::string name = shipped_model_name(channels, family);
  std::string searched;
  for (const std::string& dir : shipped_model_dirs()) {
    const fs::path candidate = fs::path(dir) / name;
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec)) return candidate.string();
    searched += (searched.empty() ? "" : ", ") + dir;
  }
  throw Error(name, "the shipped model was not found (searched " + (searched.empty() ? "nowhere: /proc/self/exe is unreadable" : searched) +
                        "); pass --model FILE, or rebuild/reinstall bottleneck");
}

}  // namespace bottleneck

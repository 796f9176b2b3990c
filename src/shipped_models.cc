#include "shipped_models.h"

#include <filesystem>
#include <system_error>

#include "error.h"

namespace bottleneck {
namespace fs = std::filesystem;

std::string shipped_model_name(int channels) {
  return channels == 1 ? "denoise-gray.pt" : "denoise-color.pt";
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

std::string shipped_model(int channels) {
  const std::string name = shipped_model_name(channels);
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

#include "test_util.h"

#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <stdexcept>

#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include "image/image_io.h"

namespace fs = std::filesystem;

namespace bottleneck::test {

TempDir::TempDir() {
  std::string templ = (fs::temp_directory_path() / "bottleneck-test-XXXXXX").string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  // Tests lock folders (no permission) to test unlistable input; a non-root owner must open
  // them again before their contents can be removed. Each pass reaches one level deeper.
  for (int pass = 0; pass < 8 && fs::remove_all(path_, ec) == static_cast<std::uintmax_t>(-1); ++pass) {
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    for (auto it = fs::recursive_directory_iterator(path_, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      std::error_code ignored;
      if (it->is_directory(ignored) && !it->is_symlink(ignored))
        fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ignored);
    }
  }
}

torch::Tensor synthetic_image(int channels, int height, int width, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto ys = torch::linspace(0, 1, height).view({height, 1}).expand({height, width});
  auto xs = torch::linspace(0, 1, width).view({1, width}).expand({height, width});
  std::vector<torch::Tensor> planes;
  // Shapes are shared across channels so colour images have correlated, realistic edges.
  struct Shape { double cx, cy, r, rect; std::array<double, 3> value; };
  std::vector<Shape> shapes;
  for (int k = 0; k < 6; ++k)
    shapes.push_back({u(rng), u(rng), 0.08 + 0.2 * u(rng), u(rng), {u(rng), u(rng), u(rng)}});
  double fx = 4 + 12 * u(rng), fy = 4 + 12 * u(rng);
  for (int c = 0; c < channels; ++c) {
    double gx = u(rng) - 0.5, gy = u(rng) - 0.5;
    auto img = 0.5 + 0.4 * (gx * (xs - 0.5) + gy * (ys - 0.5));
    for (const auto& s : shapes) {
      torch::Tensor mask;
      if (s.rect > 0.5)
        mask = ((xs - s.cx).abs() < s.r) & ((ys - s.cy).abs() < s.r * 0.7);
      else
        mask = ((xs - s.cx).pow(2) + (ys - s.cy).pow(2)) < s.r * s.r;
      img = torch::where(mask, torch::full_like(img, 0.1 + 0.8 * s.value[c]), img);
    }
    auto texture = 0.06 * torch::sin(2 * M_PI * (fx * xs + fy * ys + 0.3 * c));
    img = img + texture * (xs > 0.5).to(torch::kFloat);
    planes.push_back(img);
  }
  return torch::stack(planes).clamp(0, 1).to(torch::kFloat).contiguous();
}

void write_synthetic_images(const std::string& dir, int count, int channels, int height,
                            int width, uint64_t seed) {
  fs::create_directories(dir);
  for (int i = 0; i < count; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "img%03d.png", i);
    cv::Mat mat = tensor_to_mat(synthetic_image(channels, height, width, seed + i), CV_8U);
    if (!cv::imwrite(dir + "/" + name, mat)) throw std::runtime_error("cannot write test image");
  }
}

CommandResult run_command(const std::string& command_line) {
  CommandResult result;
  FILE* pipe = popen((command_line + " 2>&1").c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

CommandResult run_cli(const std::string& args) {
  return run_command(std::string("'") + BOTTLENECK_CLI_PATH + "' " + args);
}

bool system_python_has(const std::string& module) {
  return run_command(std::string(kSystemPython) + " -c 'import " + module + "'").exit_code == 0;
}

}  // namespace bottleneck::test

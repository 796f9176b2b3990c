#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

namespace bottleneck::test {

// A fresh directory under the system temp dir, removed (recursively) when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A synthetic "natural-ish" image: smooth gradients, filled shapes with sharp edges and a
// sinusoidal texture, deterministic in seed. C x H x W float in [0,1].
torch::Tensor synthetic_image(int channels, int height, int width, uint64_t seed);

// Writes `count` synthetic images as 8-bit PNGs named img000.png ... into dir (created).
void write_synthetic_images(const std::string& dir, int count, int channels, int height,
                            int width, uint64_t seed);

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command line, capturing its output.
CommandResult run_command(const std::string& command_line);

// Runs the bottleneck CLI built with the tests: run_cli("train --data x ...").
CommandResult run_cli(const std::string& args);

// Debian's interpreter with torch, OpenCV and skimage (the python3 first on PATH may lack them).
inline constexpr const char* kSystemPython = "/usr/bin/python3";
bool system_python_has(const std::string& module);

}  // namespace bottleneck::test

#include "train/layout_probe.h"

#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "util/atomic_file.h"
#include "util/error.h"
#include "nets/models.h"
#include "runtime/runtime.h"

namespace bottleneck {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

double training_patches_per_second(const ArchSpec& arch, c10::ScalarType dtype, int batch, int patch,
                                   double min_seconds, bool channels_last, int min_steps) {
  torch::manual_seed(0);
  Autoencoder model = make_model(arch);
  model->set_compute_dtype(dtype);
  if (channels_last) use_channels_last(*model);
  model->train();
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3));
  torch::Tensor clean = torch::rand({batch, arch.in_channels, patch, patch});
  torch::Tensor noisy = clean + 0.1 * torch::randn_like(clean);
  if (channels_last) {
    clean = to_channels_last(clean);
    noisy = to_channels_last(noisy);
  }
  auto step = [&] {
    torch::Tensor loss = torch::mse_loss(model->forward(noisy), clean);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  };
  // Warm-up: the first steps allocate the gradient and optimiser buffers and grow the caches
  // (measured 20% slower than the steady state).
  for (int i = 0; i < 3; ++i) step();
  int64_t steps = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < min_seconds || steps < min_steps) {
    step();
    ++steps;
    elapsed = seconds_since(start);
  }
  return static_cast<double>(steps * batch) / elapsed;
}

TrainingLayout choose_training_layout(const std::string& requested, bool on_cpu, const ArchSpec& arch,
                                      c10::ScalarType dtype, int batch, int patch, int threads,
                                      const std::string& cache_file) {
  if (requested != "auto" && requested != "nchw" && requested != "channels-last")
    throw UsageError("--layout must be auto, nchw or channels-last, got " + requested);
  TrainingLayout layout;
  if (requested != "auto") {
    layout.channels_last = requested == "channels-last";
    layout.how = "asked for";
    return layout;
  }
  if (!on_cpu) {
    layout.how = "not a CPU";
    return layout;
  }
  // Everything the answer depends on; a cached answer for anything else is measured again.
  const nlohmann::json key = {{"cpu", cpu_description()}, {"threads", threads},
                              {"dtype", dtype == torch::kBFloat16 ? "bf16" : "fp32"},
                              {"arch", nlohmann::json::parse(to_json(arch))}, {"batch", batch}, {"patch", patch}};
  std::error_code ec;
  if (!cache_file.empty() && std::filesystem::is_regular_file(cache_file, ec)) {
    const nlohmann::json cached = nlohmann::json::parse(read_file(cache_file), nullptr, false);
    if (cached.is_object() && cached.value("key", nlohmann::json()) == key && cached.contains("channels_last") &&
        cached["channels_last"].is_boolean()) {
      layout.channels_last = cached["channels_last"].get<bool>();
      layout.nchw_patches_per_s = cached.value("nchw_patches_per_s", 0.0);
      layout.channels_last_patches_per_s = cached.value("channels_last_patches_per_s", 0.0);
      layout.how = "measured earlier (" + cache_file + ")";
      return layout;
    }
  }
  // Alternating rounds, best of each: one round of either can be slowed by the other core.
  for (int round = 0; round < 2; ++round) {
    layout.nchw_patches_per_s =
        std::max(layout.nchw_patches_per_s, training_patches_per_second(arch, dtype, batch, patch, 0, false, 4));
    layout.channels_last_patches_per_s =
        std::max(layout.channels_last_patches_per_s, training_patches_per_second(arch, dtype, batch, patch, 0, true, 4));
  }
  layout.channels_last = layout.channels_last_patches_per_s > layout.nchw_patches_per_s;
  layout.how = "measured";
  if (!cache_file.empty()) {
    const nlohmann::json record = {{"key", key},
                                   {"channels_last", layout.channels_last},
                                   {"nchw_patches_per_s", layout.nchw_patches_per_s},
                                   {"channels_last_patches_per_s", layout.channels_last_patches_per_s}};
    write_file_atomically(cache_file, record.dump(2) + "\n");
  }
  return layout;
}

}  // namespace bottleneck

#include "runtime/runtime.h"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include <torch/torch.h>
#include <torch/version.h>

#include "runtime/cpu_allocator.h"
#include "util/error.h"

namespace bottleneck {

c10::Device resolve_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available())
      throw UsageError("--device " + name + ": CUDA is not available in this build or on this machine");
    int index = 0;
    if (name.size() > 5) {
      try {
        size_t used = 0;
        index = std::stoi(name.substr(5), &used);
        if (used != name.size() - 5) throw std::invalid_argument(name);
      } catch (const std::exception&) {
        throw UsageError("--device " + name + ": expected cuda:N with N a GPU index");
      }
    }
    if (index < 0 || index >= static_cast<int>(torch::cuda::device_count()))
      throw UsageError("--device " + name + ": no such GPU (found " +
                       std::to_string(torch::cuda::device_count()) + ")");
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw UsageError("--device " + name + ": expected auto, cpu, cuda or cuda:N");
}

bool bf16_convolution_available() {
  static const bool available = [] {
    try {
      const auto options = torch::TensorOptions().dtype(torch::kBFloat16);
      torch::NoGradGuard no_grad;
      torch::conv2d(torch::ones({1, 8, 6, 6}, options), torch::ones({8, 8, 3, 3}, options));
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }();
  return available;
}

namespace {

// The "flags" line of /proc/cpuinfo as words (empty elsewhere).
std::vector<std::string> cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::vector<std::string> flags;
    std::string w;
    while (words >> w) flags.push_back(w);
    return flags;
  }
  return {};
}

bool has_flag(const std::vector<std::string>& flags, const char* name) {
  return std::find(flags.begin(), flags.end(), name) != flags.end();
}

}  // namespace

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

bool cpu_has_native_bf16() {
  const std::vector<std::string> flags = cpu_flags();
  return has_flag(flags, "avx512_bf16") || has_flag(flags, "amx_bf16");
}

std::string cpu_description() {
  const std::vector<std::string> flags = cpu_flags();
  std::string isa;
  const std::pair<const char*, const char*> names[] = {{"avx2", "AVX2"}, {"fma", "FMA"}, {"avx512f", "AVX-512"},
                                                       {"avx512_bf16", "AVX512-BF16"}, {"amx_bf16", "AMX"}};
  for (const auto& [flag, name] : names)
    if (has_flag(flags, flag)) isa += (isa.empty() ? "" : " ") + std::string(name);
  std::string text = cpu_model_name() + "; " + (isa.empty() ? "no AVX2" : isa);
  if (const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA")) text += "; ONEDNN_MAX_CPU_ISA=" + std::string(cap);
  using CoreName = char* (*)();
  auto fn = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  text += "; OpenBLAS core " + std::string(fn && fn() ? fn() : "none (not the BLAS here)");
  return text;
}

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

int max_threads() { return std::max(16, 4 * hardware_threads()); }

// OpenBLAS is reached through the libblas.so.3 alternative, so it may or may not be the BLAS in
// this process; look its setter up at run time instead of linking against it.
void set_openblas_threads(int n) {
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(n);
}

std::string openblas_core_override(const std::string& detected_core, bool avx512, bool avx2_fma) {
  std::string core = detected_core;
  for (char& c : core) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (core != "prescott") return "";
  if (avx512) return "SkylakeX";
  if (avx2_fma) return "Haswell";
  return "";
}

std::string openblas_core_for_this_cpu(const std::string& detected_core) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  const bool avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return openblas_core_override(detected_core, avx512, avx2_fma);
#else
  (void)detected_core;
  return "";
#endif
}

std::string openblas_core_to_request() {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return "";
  using CoreName = char* (*)();
  auto fn = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (fn == nullptr || fn() == nullptr) return "";
  return openblas_core_for_this_cpu(fn());
}

std::string switch_openblas_core() {
  const std::string core = openblas_core_to_request();
  if (core.empty()) return "";
  using Hook = void (*)();
  auto quit = reinterpret_cast<Hook>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
  auto init = reinterpret_cast<Hook>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
  using CoreName = char* (*)();
  auto name = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (quit == nullptr || init == nullptr || name == nullptr) return "";
  if (setenv("OPENBLAS_CORETYPE", core.c_str(), 1) != 0) return "";
  quit();
  init();  // an unknown name would make it fall back to Prescott, never leave it without kernels
  return name() ? name() : "";
}

Runtime apply_runtime(const RuntimeOptions& options) {
  if (options.threads < 0) throw UsageError("--threads must be >= 0 (0 = all hardware threads)");
  // Beyond the cores, intra-op threads only slow LibTorch down, and OpenMP starts every one of
  // them: 100000 ran past two minutes, 2^31-1 ended in libgomp's out-of-memory abort.
  const int limit = max_threads();
  if (options.threads > limit)
    throw UsageError("--threads " + std::to_string(options.threads) + " is more than " + std::to_string(limit) +
                     " (4 per hardware thread, at least 16; this machine has " + std::to_string(hardware_threads()) +
                     "); 0 uses all hardware threads");
  if (options.cpu_cache_mb < 0) throw UsageError("--cpu-cache must be >= 0 (MB; 0 = off)");
  Runtime rt;
  rt.device = resolve_device(options.device);
  rt.threads = options.threads == 0 ? hardware_threads() : options.threads;
  rt.seed = options.seed;
  torch::set_num_threads(rt.threads);
  set_openblas_threads(1);
  install_caching_cpu_allocator(static_cast<size_t>(options.cpu_cache_mb) << 20);
  return rt;
}

std::string torch_version() { return TORCH_VERSION; }

}  // namespace bottleneck

#pragma once

#include <cstdint>
#include <string>

#include <c10/core/Device.h>

namespace bottleneck {

// Process-wide execution settings, resolved once from the CLI and applied before any work.
struct RuntimeOptions {
  std::string device = "auto";  // "auto" (CUDA when available), "cpu", "cuda" or "cuda:N"
  int threads = 0;              // intra-op threads; 0 = all hardware threads; at most max_threads()
  uint64_t seed = 0;            // base seed for every random stream of the run
  // Headroom of the CPU block cache (cpu_allocator.h): MB it may hold beyond the most tensor
  // memory in use at once; 0 = LibTorch's own allocator.
  int64_t cpu_cache_mb = kDefaultCpuCacheMb;
  static constexpr int64_t kDefaultCpuCacheMb = 256;
};

struct Runtime {
  c10::Device device = c10::Device(c10::kCPU);
  int threads = 1;
  uint64_t seed = 0;
};

// Parses "auto|cpu|cuda|cuda:N"; throws UsageError for anything else or for CUDA without a GPU.
c10::Device resolve_device(const std::string& name);

// Applies the options: sets torch's intra-op threads, pins OpenBLAS (which Debian's LibTorch
// also links, with a pool of its own that fights torch's over the same cores) to one thread and
// installs the caching CPU allocator with the chosen headroom.
Runtime apply_runtime(const RuntimeOptions& options);

// Sets OpenBLAS's own thread pool when OpenBLAS is the BLAS in this process (else does nothing).
// Convolutions do not use it; torch::mm does.
void set_openblas_threads(int n);

// The OpenBLAS kernel set to ask for (OPENBLAS_CORETYPE) instead of the one OpenBLAS detected:
// OpenBLAS 0.3.21 (Debian 12) does not know recent Xeon models and falls back to its generic
// "Prescott" (SSE3) kernels: 4.5x slower at torch::mm, and 17% of a one-thread training step.
// Returns "SkylakeX" for a CPU with AVX-512 F/BW/VL/DQ, "Haswell" for AVX2 + FMA, and "" when the
// detected core is anything but Prescott or the CPU has neither.
std::string openblas_core_override(const std::string& detected_core, bool avx512, bool avx2_fma);

// openblas_core_override with this CPU's flags.
std::string openblas_core_for_this_cpu(const std::string& detected_core);

// openblas_core_for_this_cpu for the OpenBLAS loaded in this process: "" when OpenBLAS is not
// the BLAS here, or the user already chose OPENBLAS_CORETYPE.
std::string openblas_core_to_request();

// Gives the OpenBLAS loaded in this process the kernels of openblas_core_to_request() now, without
// restarting the process: it exports gotoblas_dynamic_quit / gotoblas_dynamic_init, and init
// re-reads OPENBLAS_CORETYPE (set here too, so a child process inherits the choice). Call it
// before anything runs BLAS. Returns the core now in use ("" when nothing was asked for, or this
// OpenBLAS cannot switch: then only OPENBLAS_CORETYPE at start-up does it).
std::string switch_openblas_core();

// Whether LibTorch can run a bfloat16 convolution on this CPU in this process. It cannot when
// ONEDNN_MAX_CPU_ISA caps oneDNN below the CPU's AVX-512: LibTorch then still routes bf16
// convolutions to oneDNN (it checks the CPU, not the cap), which refuses them ("could not create
// a primitive descriptor"). Probed once with a tiny convolution; the answer cannot change within
// a process.
bool bf16_convolution_available();

// The CPU model name (Linux: /proc/cpuinfo; "unknown" elsewhere).
std::string cpu_model_name();
// Whether the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16).
bool cpu_has_native_bf16();
// One line that says which machine a measurement is for: model, the instruction sets that
// decide LibTorch's and OpenBLAS's kernels, ONEDNN_MAX_CPU_ISA if set, and the OpenBLAS core,
// e.g. "Intel(R) Xeon(R) Processor; AVX2 FMA AVX-512 AVX512-BF16 AMX; OpenBLAS core SkylakeX".
std::string cpu_description();

// Number of hardware threads, at least 1.
int hardware_threads();

// The most --threads accepts: 4 per hardware thread, at least 16.
int max_threads();

// Version string of the LibTorch we were built against.
std::string torch_version();

}  // namespace bottleneck

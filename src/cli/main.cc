// The bottleneck executable: git-style subcommands over the library. It only parses options and
// dispatches; exit codes: 0 success, 1 failure while working, 2 bad usage.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "cli/command.h"
#include "runtime/cpu_allocator.h"
#include "util/error.h"
#include "runtime/runtime.h"
#include "bottleneck/version.h"

namespace bottleneck::cli {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// Global options that take a value, so the command finder can step over their values.
bool global_takes_value(const std::string& arg) {
  return arg == "--device" || arg == "--threads" || arg == "--seed" || arg == "--cpu-cache";
}

void add_global_options(cxxopts::Options& options) {
  options.add_options("Global")
      ("device", "auto (CUDA when available), cpu, cuda or cuda:N", cxxopts::value<std::string>()->default_value("auto"))
      ("threads", "intra-op CPU threads; 0 = all hardware threads", cxxopts::value<int>()->default_value("0"))
      ("seed", "seed of every random stream (noise, patches, initialisation)", cxxopts::value<uint64_t>()->default_value("0"))
      ("cpu-cache", "MB of freed CPU tensor memory kept for reuse beyond the most in use at once; 0 = off",
       cxxopts::value<int64_t>()->default_value(std::to_string(RuntimeOptions::kDefaultCpuCacheMb)))
      ("v,verbose", "more detail in logs")
      ("q,quiet", "only warnings and errors")
      ("h,help", "show this help");
}

std::string top_level_help(const std::vector<Command>& commands) {
  std::string text =
      "bottleneck " + std::string(kVersion) +
      ": train and run convolutional autoencoders for images\n\n"
      "usage: bottleneck [global options] <command> [options]\n\ncommands:\n";
  for (const auto& c : commands) {
    std::string name = "  " + c.name;
    name.resize(14, ' ');
    text += name + c.summary + "\n";
  }
  text +=
      "\nglobal options (before or after the command):\n"
      "  --device D    auto (CUDA when available), cpu, cuda or cuda:N [auto]\n"
      "  --threads N   intra-op CPU threads, 0 = all hardware threads [0]\n"
      "  --seed N      seed of every random stream [0]\n"
      "  --cpu-cache MB  freed CPU tensor memory kept for reuse beyond the most in use\n"
      "                at once, 0 = off [" +
      std::to_string(RuntimeOptions::kDefaultCpuCacheMb) + "]\n"
      "  -v, --verbose / -q, --quiet   log level\n"
      "  --version     print versions and exit\n\n"
      "`bottleneck <command> --help` describes a command.\n";
  return text;
}

int usage_error(const std::string& message) {
  std::cerr << "bottleneck: " << message << " (see --help)\n";
  return kExitUsage;
}

// Settings that libraries read once, when they are loaded, so the long-running commands
// re-execute themselves with them in the environment (a user's own values are kept):
// - OMP_WAIT_POLICY=passive. OpenMP worker threads spin while they wait for work (libgomp's
//   default). On a core that another process also uses, the spinning steals that process's
//   time: with a CPU hog on one of two cores, the shipped model took 1.12-1.26x as long with 2
//   threads as with 1; passive, 0.96x, for a 3% loss on an idle machine (bench row 3c). A user
//   who sets OMP_WAIT_POLICY gets no exec for it.
// - OPENBLAS_CORETYPE, only where OpenBLAS fell back to its generic kernels on a CPU it does not
//   know (runtime.h: openblas_core_override): training on one thread ran 1.15x as fast (16.1-16.2
//   -> 18.4-18.7 patches/s; with 2 threads LibTorch called no BLAS and nothing changed) and
//   torch::mm 2048^2 4.5x as fast.
// (The exec also asked glibc for huge pages until the CPU block cache made fresh mappings rare:
// with the cache, Kodak took 10.6-11.0 s with them and 10.6-10.7 s without, at the same peak
// RSS.) Returns only if no exec was needed or it failed.
void reexec_with_runtime_environment(char** argv) {
  bool changed = false;
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && setenv("OMP_WAIT_POLICY", "PASSIVE", 0) == 0) changed = true;
  const std::string core = openblas_core_to_request();
  if (!core.empty() && setenv("OPENBLAS_CORETYPE", core.c_str(), 0) == 0) changed = true;
  if (changed) execv("/proc/self/exe", argv);
}

int run(int argc, char** argv) {
  const std::vector<Command> commands = all_commands();

  // Find the command: the first argument that is neither an option nor an option's value.
  int command_index = -1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") break;
    if (!arg.empty() && arg[0] == '-') {
      if (global_takes_value(arg)) ++i;
      continue;
    }
    command_index = i;
    break;
  }

  if (command_index < 0) {
    for (int i = 1; i < argc; ++i) {
      if (!std::strcmp(argv[i], "--version")) {
        std::cout << "bottleneck " << kVersion << " (LibTorch " << torch_version() << ")\n";
        return 0;
      }
    }
    for (int i = 1; i < argc; ++i) {
      if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
        std::cout << top_level_help(commands);
        return 0;
      }
    }
    if (argc > 1) return usage_error(std::string("no command given (got option ") + argv[1] + ")");
    std::cerr << top_level_help(commands);
    return kExitUsage;
  }

  const std::string name = argv[command_index];
  const Command* command = nullptr;
  for (const auto& c : commands)
    if (c.name == name) command = &c;
  if (!command) return usage_error("unknown command '" + name + "'");
  if (name == "denoise" || name == "eval" || name == "train" || name == "bench" || name == "compress" ||
      name == "decompress")
    reexec_with_runtime_environment(argv);

  cxxopts::Options options("bottleneck " + name, command->summary);
  options.custom_help("[options]");
  options.positional_help(command->positional_help);
  command->add_options(options);
  add_global_options(options);
  if (!command->positionals.empty()) options.parse_positional(command->positionals);

  // Parse everything but the command word, so global options work on either side of it.
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i)
    if (i != command_index) rest.push_back(argv[i]);
  int rest_argc = static_cast<int>(rest.size());

  cxxopts::ParseResult parsed;
  try {
    parsed = options.parse(rest_argc, rest.data());
  } catch (const std::exception& e) {
    return usage_error(name + ": " + e.what());
  }
  if (parsed.count("help")) {
    std::cout << options.help();
    return 0;
  }
  if (!parsed.unmatched().empty()) return usage_error(name + ": unexpected argument '" + parsed.unmatched().front() + "'");
  if (parsed.count("verbose") && parsed.count("quiet")) return usage_error("--verbose and --quiet exclude each other");

  RuntimeOptions runtime;
  runtime.device = parsed["device"].as<std::string>();
  runtime.threads = parsed["threads"].as<int>();
  runtime.seed = parsed["seed"].as<uint64_t>();
  runtime.cpu_cache_mb = parsed["cpu-cache"].as<int64_t>();
  const LogLevel level = parsed.count("verbose") ? LogLevel::kDebug
                         : parsed.count("quiet") ? LogLevel::kQuiet
                                                 : LogLevel::kInfo;

  try {
    const Context context{apply_runtime(runtime), Logger(level)};
    const int status = command->run(parsed, context);
    const CpuCacheStats cache = caching_cpu_allocator_stats();
    if (cache.hits + cache.misses > 0)
      context.log.debug("CPU cache: ", cache.hits, " hits, ", cache.misses, " misses, at most ",
                        cache.peak_cached_bytes >> 20, " MB cached, ", cache.peak_requested_bytes >> 20,
                        " MB in use at once");
    return status;
  } catch (const UsageError& e) {
    return usage_error(name + ": " + e.what());
  } catch (const std::exception& e) {
    // cxxopts reports a bad value (e.g. --threads x) only when the value is read.
    std::string what = e.what();
    std::cerr << "bottleneck " << name << ": error: " << what.substr(0, what.find('\n')) << "\n";
    return kExitFailure;
  }
}

}  // namespace
}  // namespace bottleneck::cli

int main(int argc, char** argv) { return bottleneck::cli::run(argc, argv); }

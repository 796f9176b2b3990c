// The bottleneck executable: git-style subcommands over the library. It only parses options and
// dispatches; exit codes are command.h's.
#include <unistd.h>

#include <algorithm>
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

// The global options, once: the parser, the command finder and `bottleneck --help` read them here.
struct GlobalOption {
  std::string flags;  // cxxopts' names: "threads", "v,verbose"
  std::string arg;    // the value's name in help texts ("N"); empty for a switch
  std::string help;
  std::shared_ptr<cxxopts::Value> value;  // nullptr for a switch
};

std::vector<GlobalOption> global_options() {
  return {
      {"device", "D", "auto (CUDA when available), cpu, cuda or cuda:N",
       cxxopts::value<std::string>()->default_value("auto")},
      {"threads", "N", "intra-op CPU threads; 0 = all hardware threads", cxxopts::value<int>()->default_value("0")},
      {"seed", "N", "seed of every random stream (noise, patches, initialisation)",
       cxxopts::value<uint64_t>()->default_value("0")},
      {"cpu-cache", "MB", "freed CPU tensor memory kept for reuse beyond the most in use at once; 0 = off",
       cxxopts::value<int64_t>()->default_value(std::to_string(RuntimeOptions::kDefaultCpuCacheMb))},
      {"v,verbose", "", "more detail in logs", nullptr},
      {"q,quiet", "", "only warnings and errors", nullptr},
      {"h,help", "", "show this help", nullptr},
  };
}

// "--threads" for "threads", "-v, --verbose" for "v,verbose".
std::string long_flag(const GlobalOption& o) { return "--" + o.flags.substr(o.flags.find(',') + 1); }

// Global options that take a value, so the command finder can step over their values.
bool global_takes_value(const std::string& arg) {
  for (const GlobalOption& o : global_options())
    if (o.value && arg == long_flag(o)) return true;
  return false;
}

void add_global_options(cxxopts::Options& options) {
  auto add = options.add_options("Global");
  for (const GlobalOption& o : global_options()) {
    if (o.value) add(o.flags, o.help, o.value, o.arg);
    else add(o.flags, o.help);
  }
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
  text += "\nglobal options (before or after the command):\n";
  auto line = [&](std::string flag, const std::string& help) {
    flag = "  " + flag;
    flag.resize(std::max<size_t>(flag.size() + 2, 20), ' ');
    text += flag + help + "\n";
  };
  for (const GlobalOption& o : global_options()) {
    const size_t comma = o.flags.find(',');
    const std::string flag = (comma == std::string::npos ? "" : "-" + o.flags.substr(0, comma) + ", ") + long_flag(o) +
                             (o.arg.empty() ? "" : " " + o.arg);
    line(flag, o.help + (o.value && o.value->has_default() ? " [" + o.value->get_default_value() + "]" : ""));
  }
  line("--version", "print versions and exit");
  text +=
      "\nexit codes: 0 done; 1 failed while working, or inputs were skipped; 2 bad usage (option, value or\n"
      "config file); train stopped by a signal before its last step (resumable): 130 (SIGINT), 143 (SIGTERM).\n"
      "\n`bottleneck <command> --help` describes a command.\n";
  return text;
}

int usage_error(const std::string& message) {
  std::cerr << "bottleneck: " << message << " (see --help)\n";
  return kExitUsage;
}

// The exit code of an error that ends a command: the one place kinds become exit codes.
int exit_code_of(ErrorKind kind) { return kind == ErrorKind::kUsage ? kExitUsage : kExitFailure; }

// cxxopts says only "Argument 'abc' failed to parse": which option took the value, and what it
// wants, are found by parsing each option of the command line alone, and then that option with
// sample values (cxxopts does not expose an option's type; its parser is what knows it).
std::string bad_value_message(cxxopts::Options& options, const std::vector<char*>& args) {
  auto fails = [&](std::vector<std::string> words) {
    words.insert(words.begin(), "bottleneck");
    std::vector<const char*> argv;
    for (const std::string& w : words) argv.push_back(w.c_str());
    try {
      options.parse(static_cast<int>(argv.size()), argv.data());
      return false;
    } catch (const cxxopts::exceptions::incorrect_argument_type&) {
      return true;
    } catch (const cxxopts::exceptions::exception&) {
      return false;  // another complaint (a missing value, ...): not this one
    }
  };
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string word = args[i];
    if (word.size() < 2 || word[0] != '-' || word == "--") continue;
    const size_t equals = word.find('=');
    std::string flag = word, value;
    if (equals != std::string::npos) {
      flag = word.substr(0, equals);
      value = word.substr(equals + 1);
    } else if (i + 1 < args.size()) {
      value = args[i + 1];
    }
    if (!fails({flag, value})) continue;
    std::string expected;
    if (!fails({flag, "1,2"}) && fails({flag, "0.5"})) expected = "comma-separated whole numbers";
    else if (!fails({flag, "0.5"})) expected = "a number";
    else if (fails({flag, "-1"})) expected = "a whole number from 0 to 18446744073709551615";
    else if (!fails({flag, "2147483648"})) expected = "a whole number from -9223372036854775808 to 9223372036854775807";
    else expected = "a whole number from -2147483648 to 2147483647";
    return flag + " takes " + expected + ", got '" + value + "'";
  }
  return "a value failed to parse";
}

// Settings that libraries read once, when they are loaded, so the long-running commands
// re-execute themselves with them in the environment (a user's own values are kept):
// - OMP_WAIT_POLICY=passive. OpenMP worker threads spin while they wait for work (libgomp's
//   default). On a core that another process also uses, the spinning steals that process's
//   time: with a CPU hog on one of two cores, the shipped model took 1.12-1.26x as long with 2
//   threads as with 1; passive, 0.96x, for a 3% loss on an idle machine (bench row 3c). A user
//   who sets OMP_WAIT_POLICY gets no exec for it.
// - OPENBLAS_CORETYPE, only where OpenBLAS fell back to its generic kernels on a CPU it does not
//   know (runtime.h: openblas_core_override) and cannot be switched in place (run() first tries
//   switch_openblas_core(), which needs no exec): training on one thread ran 1.15x as fast
//   (16.1-16.2 -> 18.4-18.7 patches/s) and torch::mm 2048^2 4.5x as fast; the codec's compress
//   of Kodak kodim03 ran 1.30x as fast at 2 threads.
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
  // Before anything runs BLAS, and before the exec below, which then need not ask for a core.
  switch_openblas_core();
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
  // Not compress / decompress: a second LibTorch start-up is most of a one-photo command's time
  // (Kodak kodim03, --quality 50, 2 threads: 1.37x the wall time and 1.44x the CPU time with the
  // exec as without it, farm-bench median of 5 pairs, 2026-12-01).
  if (name == "denoise" || name == "eval" || name == "train" || name == "bench")
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
  } catch (const cxxopts::exceptions::incorrect_argument_type&) {
    return usage_error(name + ": " + bad_value_message(options, rest));
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
  } catch (const std::exception& e) {
    const Error* error = dynamic_cast<const Error*>(&e);
    const int code = error ? exit_code_of(error->kind()) : kExitFailure;
    if (code == kExitUsage) return usage_error(name + ": " + e.what());
    const std::string what = e.what();
    std::cerr << "bottleneck " << name << ": error: " << what.substr(0, what.find('\n')) << "\n";
    return code;
  }
}

}  // namespace
}  // namespace bottleneck::cli

int main(int argc, char** argv) { return bottleneck::cli::run(argc, argv); }

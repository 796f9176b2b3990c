#pragma once

#include <functional>
#include <string>
#include <vector>

#include <cxxopts.hpp>

#include "util/log.h"
#include "runtime/runtime.h"

namespace bottleneck::cli {

// What every command receives besides its own options: the global options, parsed and applied
// (threads set, device resolved) before the command runs.
struct Context {
  Runtime runtime;
  Logger log;
};

// Exit codes of the bottleneck executable (README "Exit codes"). A command's run() returns one;
// main maps an escaping Error to one by its kind (exit_code_of in main.cc, the only place).
inline constexpr int kExitSuccess = 0;
inline constexpr int kExitFailure = 1;  // failed while working (bad data, I/O, ...), or some inputs skipped
inline constexpr int kExitUsage = 2;    // what the user typed: bad option, value or config file
// A train stopped by a signal before its last step (last.ckpt written, resumable): 128 + the
// signal's number as a shell reports a process killed by it, so 130 for SIGINT (Ctrl-C) and 143
// for SIGTERM; a script can tell a finished run from an interrupted one.
inline constexpr int kExitSignalBase = 128;

// A subcommand: it declares its options, then turns the parse result into the options struct of
// a library function and calls it. Return value = process exit code.
struct Command {
  std::string name;
  std::string summary;
  std::string positional_help;  // e.g. "[INPUT] [OUTPUT]"; empty when it takes no positionals
  std::vector<std::string> positionals;  // option names that positional arguments fill, in order
  std::function<void(cxxopts::Options&)> add_options;
  std::function<int(const cxxopts::ParseResult&, const Context&)> run;
};

// The registry, in the order `bottleneck --help` lists them. Each command_*.cc adds one.
std::vector<Command> all_commands();
Command arch_command();
Command bench_command();
Command denoise_command();
Command eval_command();
Command export_command();
Command info_command();
Command train_command();
Command compress_command();
Command decompress_command();
Command score_command();
Command calibrate_command();
Command encode_command();
Command decode_command();

// Helpers for command implementations.
template <typename T>
T get_or(const cxxopts::ParseResult& r, const std::string& name, T fallback) {
  return r.count(name) ? r[name].as<T>() : fallback;
}

}  // namespace bottleneck::cli

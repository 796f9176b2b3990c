#include "cli/command.h"

namespace bottleneck::cli {

std::vector<Command> all_commands() { return {train_command(), denoise_command(), eval_command(), export_command(), info_command(), arch_command(), bench_command(), compress_command(), decompress_command(), score_command(), calibrate_command(), encode_command(), decode_command()}; }

}  // namespace bottleneck::cli

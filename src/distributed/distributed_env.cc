#include "distributed/distributed_env.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "util/error.h"

namespace bottleneck {

namespace {

// A whole decimal number in [lo, hi], or a UsageError naming the variable.
int whole_number(const char* name, const char* text, long lo, long hi) {
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (text[0] == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi)
    throw UsageError(std::string(name) + "=" + text + " is not a whole number from " + std::to_string(lo) + " to " +
                     std::to_string(hi) + " (the launcher's environment for distributed training)");
  return static_cast<int>(v);
}

}  // namespace

DistributedOptions distributed_options_from_environment(const std::function<const char*(const char*)>& getenv) {
  DistributedOptions o;
  const char* world = getenv("WORLD_SIZE");
  if (world == nullptr || world[0] == '\0') return o;
  o.world_size = whole_number("WORLD_SIZE", world, 1, 1 << 20);
  if (o.world_size == 1) return o;
  auto required = [&](const char* name) {
    const char* v = getenv(name);
    if (v == nullptr || v[0] == '\0')
      throw UsageError(std::string("WORLD_SIZE=") + world + " asks for distributed training, but " + name +
                       " is not set (launch with torchrun, or set RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT)");
    return v;
  };
  o.rank = whole_number("RANK", required("RANK"), 0, o.world_size - 1);
  const char* local = getenv("LOCAL_RANK");
  o.local_rank = local && local[0] ? whole_number("LOCAL_RANK", local, 0, o.world_size - 1) : 0;
  o.master_addr = required("MASTER_ADDR");
  o.master_port = whole_number("MASTER_PORT", required("MASTER_PORT"), 1, 65535);
  const char* agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
  o.agent_store = agent && std::string(agent) == "True";  // Python's str(True), as torch reads it
  const char* restarts = getenv("TORCHELASTIC_RESTART_COUNT");
  if (restarts && restarts[0]) o.restart_count = whole_number("TORCHELASTIC_RESTART_COUNT", restarts, 0, 1 << 30);
  return o;
}

void validate(const DistributedOptions& o) {
  if (o.world_size < 1) throw UsageError("WORLD_SIZE must be >= 1, got " + std::to_string(o.world_size));
  if (o.rank < 0 || o.rank >= o.world_size)
    throw UsageError("RANK=" + std::to_string(o.rank) + " is not below WORLD_SIZE=" + std::to_string(o.world_size));
  if (!(o.timeout_s > 0) || !std::isfinite(o.timeout_s) || o.timeout_s > 7 * 24 * 3600.0)
    throw UsageError("--dist-timeout must be > 0 seconds and at most a week, got " + std::to_string(o.timeout_s));
  if (o.enabled() && (o.master_port < 1 || o.master_port > 65535))
    throw UsageError("MASTER_PORT must be from 1 to 65535, got " + std::to_string(o.master_port));
}

std::string rank_text(const DistributedOptions& o) {
  return o.enabled() ? "rank " + std::to_string(o.rank) + " of " + std::to_string(o.world_size) : "";
}

bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

}  // namespace bottleneck

#pragma once

// Where this process stands in a data-parallel run, read from the environment a launcher sets
// (torchrun, scripts/train_distributed.sh): WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT, and torchrun's TORCHELASTIC_* variables. Torch-free.

#include <functional>
#include <string>

namespace bottleneck {

struct DistributedOptions {
  int world_size = 1;           // processes training the run together; 1 = not distributed
  int rank = 0;                 // this process, 0 .. world_size - 1; rank 0 writes the run's files
  int local_rank = 0;           // this process among those on its machine: the GPU it uses
  std::string master_addr;      // host of the rendezvous store (rank 0's, or torchrun's agent's)
  int master_port = 0;          // its TCP port, 1..65535
  double timeout_s = 300;       // --dist-timeout: the longest any rank waits for the others (to
                                // connect, or inside one collective) before it fails; > 0
  // torchrun with a static rendezvous hosts the store in its agent (TORCHELASTIC_USE_AGENT_STORE):
  // every rank is then a client, and keys live under /worker/attempt_N, as in PyTorch's own
  // env:// rendezvous. Otherwise rank 0 hosts the store.
  bool agent_store = false;
  int restart_count = 0;        // TORCHELASTIC_RESTART_COUNT: the N above

  bool enabled() const { return world_size > 1; }
};

// Reads the variables through `getenv` (std::getenv in the CLI; a map in tests). WORLD_SIZE
// unset or 1 gives a single-process run; WORLD_SIZE > 1 needs every other variable. A missing
// or malformed variable is a UsageError naming it: "RANK=3 is not below WORLD_SIZE=2".
DistributedOptions distributed_options_from_environment(const std::function<const char*(const char*)>& getenv);

// Checks `options` (the ranges above); throws UsageError naming the field.
void validate(const DistributedOptions& options);

// "rank 1 of 2" (or "" for a single process): what every distributed message starts with.
std::string rank_text(const DistributedOptions& options);

// Whether `host` names this machine's loopback interface (127.0.0.0/8, localhost, ::1): every
// rank then runs here, and Gloo talks over the loopback device.
bool is_loopback_host(const std::string& host);

}  // namespace bottleneck

#include "distributed/process_group.h"

#include <chrono>
#include <cstdlib>
#include <functional>
#include <utility>

#include <torch/torch.h>

#if BOTTLENECK_HAVE_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#if BOTTLENECK_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "util/text_format.h"

namespace bottleneck {

c10::Device device_for_rank(const c10::Device& chosen, const DistributedOptions& options) {
  if (!options.enabled() || !chosen.is_cuda()) return chosen;
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(options.local_rank));
}

bool ProcessGroup::any(bool flag, const std::string& what) {
  torch::Tensor t = torch::full({1}, flag ? 1 : 0, torch::TensorOptions().dtype(torch::kInt).device(device_));
  max(t, what);
  return t.item<int>() != 0;
}

Error ProcessGroup::failure(const std::string& what, const std::string& cause) const {
  return Error(ErrorKind::kFailed, rank_text(options_),
               what + " failed: " + cause + " (another rank stopped or cannot be reached; its own message says why)");
}

#if BOTTLENECK_HAVE_GLOO

bool distributed_training_available() { return true; }

namespace {

// c10::Error's what() carries a C++ stack trace, Gloo's starts with its source position
// ("[../gloo/transport/tcp/pair.cc:589] Read error ..."): users get the sentence only.
std::string cause_of(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string line = first_line(c10 ? c10->what_without_backtrace() : e.what());
  if (line.size() > 2 && line[0] == '[') {
    const size_t close = line.find("] ");
    if (close != std::string::npos && line.find(".cc:") < close) line = line.substr(close + 2);
  }
  return line;
}

std::chrono::milliseconds milliseconds(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

// One implementation for both backends: their collectives have the same signatures (c10d's
// ProcessGroup interface in LibTorch 1.13, its Backend interface in 2.x), so `auto` holds
// whichever Work type the version returns.
template <typename Backend>
class C10dGroup final : public ProcessGroup {
 public:
  C10dGroup(DistributedOptions options, c10::Device device, c10::intrusive_ptr<c10d::Store> store,
            c10::intrusive_ptr<Backend> backend)
      : ProcessGroup(std::move(options), device), store_(std::move(store)), backend_(std::move(backend)) {}

  std::unique_ptr<Pending> start_sum(torch::Tensor tensor, const std::string& what) override {
    return std::make_unique<Work>(*this, start(tensor, c10d::ReduceOp::SUM, what), what);
  }
  void max(torch::Tensor tensor, const std::string& what) override {
    Work(*this, start(tensor, c10d::ReduceOp::MAX, what), what).wait();
  }
  void min(torch::Tensor tensor, const std::string& what) override {
    Work(*this, start(tensor, c10d::ReduceOp::MIN, what), what).wait();
  }
  void broadcast(std::vector<torch::Tensor> tensors, const std::string& what) override {
    // One collective per tensor: c10d's broadcast takes a list of copies of one tensor (one per
    // device), not a list of different tensors.
    for (torch::Tensor& t : tensors) {
      std::vector<at::Tensor> one{t};
      c10d::BroadcastOptions options;
      options.rootRank = 0;
      options.rootTensor = 0;
      Work(*this, guarded(what, [&] { return backend_->broadcast(one, options); }), what).wait();
    }
  }
  std::string broadcast_bytes(const std::string& bytes, const std::string& what) override {
    const std::string key = "bottleneck/bytes/" + std::to_string(bytes_sent_++);
    try {
      if (rank() == 0) {
        store_->set(key, std::vector<uint8_t>(bytes.begin(), bytes.end()));
        return bytes;
      }
      const std::vector<uint8_t> value = store_->get(key);  // waits up to the store's timeout
      return std::string(value.begin(), value.end());
    } catch (const std::exception& e) {
      throw failure(what, cause_of(e));
    }
  }

 private:
  using WorkPtr = decltype(std::declval<Backend&>().allreduce(std::declval<std::vector<at::Tensor>&>()));

  class Work final : public Pending {
   public:
    Work(const C10dGroup& group, WorkPtr work, std::string what)
        : group_(group), work_(std::move(work)), what_(std::move(what)) {}
    void wait() override {
      if (!work_) return;
      try {
        work_->wait();
      } catch (const std::exception& e) {
        work_.reset();
        throw group_.failure(what_, cause_of(e));
      }
      work_.reset();
    }
    // A Work dropped unwaited (an exception elsewhere) must still finish before its tensor goes.
    ~Work() override {
      try {
        if (work_) work_->wait();
      } catch (const std::exception&) {
      }
    }

   private:
    const C10dGroup& group_;
    WorkPtr work_;
    std::string what_;
  };

  template <typename F>
  WorkPtr guarded(const std::string& what, F&& f) {
    try {
      return f();
    } catch (const std::exception& e) {
      throw failure(what, cause_of(e));
    }
  }

  WorkPtr start(torch::Tensor& tensor, c10d::ReduceOp op, const std::string& what) {
    std::vector<at::Tensor> one{tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = op;
    return guarded(what, [&] { return backend_->allreduce(one, options); });
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<Backend> backend_;
  int64_t bytes_sent_ = 0;
};

}  // namespace

std::unique_ptr<ProcessGroup> ProcessGroup::join(const DistributedOptions& options, const c10::Device& device,
                                                 const Logger& log) {
  validate(options);
  const std::string who = rank_text(options);
  const std::string where = options.master_addr + ":" + std::to_string(options.master_port);
  const std::chrono::milliseconds timeout = milliseconds(options.timeout_s);
  // The store: rank 0 hosts it (and waits for every rank to connect) unless torchrun's agent
  // does; the others connect, retrying until the timeout.
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(options.master_port);
    so.isServer = !options.agent_store && options.rank == 0;
    so.numWorkers = static_cast<size_t>(options.world_size);
    so.waitWorkers = !options.agent_store;
    so.timeout = timeout;
    so.multiTenant = true;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(options.master_addr, so);
    store = tcp;
    if (options.agent_store)
      store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(options.restart_count), tcp);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kFailed, who,
                "could not meet the other ranks at the rendezvous store " + where + " within " +
                    fixed(options.timeout_s, 0) + " s (--dist-timeout): " + cause_of(e));
  }
  try {
#if BOTTLENECK_HAVE_NCCL
    if (device.is_cuda()) {
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = timeout;
      auto backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, options.rank, options.world_size, nccl);
      log.info(who, ": joined over NCCL (", where, ", ", device.str(), ")");
      return std::make_unique<C10dGroup<c10d::ProcessGroupNCCL>>(options, device, store, backend);
    }
#endif
    if (!device.is_cpu())
      throw Error(ErrorKind::kUnsupported, who,
                  "distributed training on " + device.str() +
                      " needs NCCL, which this build lacks (CMake found no CUDA LibTorch with NCCL's nccl.h); "
                      "train on --device cpu, or rebuild");
    auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
    // GLOO_SOCKET_IFNAME as PyTorch reads it; a loopback master means every rank runs here.
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && ifname[0])
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (is_loopback_host(options.master_addr))
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, options.rank, options.world_size, gloo);
    log.info(who, ": joined over Gloo (", where, ")");
    return std::make_unique<C10dGroup<c10d::ProcessGroupGloo>>(options, device, store, backend);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kFailed, who, "could not connect to every other rank within " +
                                             fixed(options.timeout_s, 0) + " s (--dist-timeout): " + cause_of(e));
  }
}

#else  // no Gloo headers at build time

bool distributed_training_available() { return false; }

std::unique_ptr<ProcessGroup> ProcessGroup::join(const DistributedOptions& options, const c10::Device&,
                                                 const Logger&) {
  throw Error(ErrorKind::kUnsupported, rank_text(options),
              "WORLD_SIZE=" + std::to_string(options.world_size) +
                  " asks for distributed training, but this build has none: it was built without Gloo's headers "
                  "(Debian: apt-get install libgloo-dev, then rebuild)");
}

#endif

}  // namespace bottleneck

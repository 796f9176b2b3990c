#include "distributed/data_parallel.h"

#include <cstring>
#include <memory>

#include "util/error.h"

namespace bottleneck {

GradientReducer::GradientReducer(ProcessGroup& group, std::vector<torch::Tensor> parameters, int64_t bucket_bytes)
    : group_(group) {
  // Buckets fill from the last parameter: backward produces the last layers' gradients first,
  // so this is the order in which buckets become complete.
  Bucket current;
  auto close = [&] {
    if (current.parameters.empty()) return;
    buckets_.push_back(std::move(current));
    current = Bucket{};
  };
  for (auto it = parameters.rbegin(); it != parameters.rend(); ++it) {
    const torch::Tensor& p = *it;
    if (!current.parameters.empty() && (current.parameters.front().scalar_type() != p.scalar_type() ||
                                        (current.gradient_elements + p.numel()) * p.element_size() > bucket_bytes))
      close();
    current.parameters.push_back(p);
    current.gradient_elements += p.numel();
  }
  close();
  riding_ = 8;  // room for a few values (the loss); average() checks the count
  for (size_t b = 0; b < buckets_.size(); ++b) {
    Bucket& bucket = buckets_[b];
    const int64_t extra = b == 0 ? static_cast<int64_t>(riding_) : 0;
    bucket.flat = torch::zeros({bucket.gradient_elements + extra},
                               torch::TensorOptions()
                                   .dtype(bucket.parameters.front().scalar_type())
                                   .device(bucket.parameters.front().device()));
  }
}

std::vector<double> GradientReducer::average(const std::vector<double>& values, const std::string& what) {
  if (values.size() > riding_) throw Error("GradientReducer: more riding values than room (internal)");
  torch::NoGradGuard no_grad;
  std::vector<std::unique_ptr<ProcessGroup::Pending>> pending;
  pending.reserve(buckets_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    Bucket& bucket = buckets_[b];
    int64_t offset = 0;
    for (const torch::Tensor& p : bucket.parameters) {
      torch::Tensor slot = bucket.flat.narrow(0, offset, p.numel());
      const torch::Tensor& g = p.grad();
      if (g.defined()) slot.copy_(g.reshape(-1));
      else slot.zero_();
      offset += p.numel();
    }
    if (b == 0) {
      torch::Tensor tail = bucket.flat.narrow(0, offset, static_cast<int64_t>(riding_));
      tail.zero_();
      for (size_t v = 0; v < values.size(); ++v) tail[static_cast<int64_t>(v)] = values[v];
    }
    pending.push_back(group_.start_sum(bucket.flat, what));
  }
  const double ranks = static_cast<double>(group_.size());
  std::vector<double> averaged(values.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    pending[b]->wait();
    Bucket& bucket = buckets_[b];
    bucket.flat.div_(ranks);
    int64_t offset = 0;
    for (torch::Tensor& p : bucket.parameters) {
      if (p.grad().defined()) p.mutable_grad().copy_(bucket.flat.narrow(0, offset, p.numel()).view(p.sizes()));
      offset += p.numel();
    }
    if (b == 0) {
      const torch::Tensor tail = bucket.flat.narrow(0, offset, static_cast<int64_t>(riding_)).to(torch::kCPU, torch::kDouble);
      for (size_t v = 0; v < values.size(); ++v) averaged[v] = tail[static_cast<int64_t>(v)].item<double>();
    }
  }
  return averaged;
}

namespace {

std::vector<torch::Tensor> state_tensors(torch::nn::Module& module) {
  std::vector<torch::Tensor> all = module.parameters();
  for (const torch::Tensor& b : module.buffers()) all.push_back(b);
  return all;
}

}  // namespace

void broadcast_module(ProcessGroup& group, torch::nn::Module& module, const std::string& what) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> targets = state_tensors(module), sent;
  // A collective needs a contiguous tensor; a channels-last parameter goes through a copy.
  for (torch::Tensor& t : targets) sent.push_back(t.is_contiguous() ? t : t.contiguous());
  group.broadcast(sent, what);
  for (size_t i = 0; i < targets.size(); ++i)
    if (!sent[i].is_same(targets[i])) targets[i].copy_(sent[i]);
}

uint64_t weights_fingerprint(torch::nn::Module& module) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a 64
  for (const torch::Tensor& t : state_tensors(module)) {
    const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    const auto* bytes = static_cast<const unsigned char*>(c.data_ptr());
    const size_t n = static_cast<size_t>(c.numel()) * c.element_size();
    for (size_t i = 0; i < n; ++i) h = (h ^ bytes[i]) * 1099511628211ULL;
  }
  return h;
}

uint64_t require_identical_weights(ProcessGroup& group, torch::nn::Module& module, const std::string& when) {
  const uint64_t mine = weights_fingerprint(module);
  int64_t as_signed = 0;
  std::memcpy(&as_signed, &mine, sizeof mine);
  const auto options = torch::TensorOptions().dtype(torch::kLong).device(group.device());
  torch::Tensor lo = torch::full({1}, as_signed, options), hi = torch::full({1}, as_signed, options);
  group.min(lo, "the weights check " + when);
  group.max(hi, "the weights check " + when);
  if (lo.item<int64_t>() != hi.item<int64_t>())
    throw Error(ErrorKind::kFailed, rank_text(group.options()),
                "the ranks' weights differ " + when +
                    " (a rank computed differently: another LibTorch, thread count or device?); the last checkpoint "
                    "is rank 0's");
  return mine;
}

}  // namespace bottleneck

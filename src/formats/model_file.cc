#include "formats/model_file.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <sstream>
#include <cmath>
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include "formats/checkpoint.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "formats/exporter.h"
#include "nets/layer_plan.h"
#include "nets/models.h"

namespace bottleneck {

int receptive_radius(const ArchSpec& spec) { return make_plan(spec).receptive_radius(); }

int InferenceModel::receptive_radius() const { return bottleneck::receptive_radius(info().arch); }

namespace {

// Every model runs as the native network (models.cc): a checkpoint's, or the one an export's
// ArchSpec describes with the export's parameters copied in by name. Exports are generated from
// the same walk over the spec and checked equal to it, so this changes no number; it gives one
// implementation to make fast (bf16, the upsampling formulation) and never runs the code that
// a TorchScript file carries.
class NativeModel : public InferenceModel {
 public:
  NativeModel(Autoencoder model, ModelInfo info, c10::Device device, c10::ScalarType dtype, bool optimize)
      : model_(std::move(model)), info_(std::move(info)) {
    try {
      model_->to(device);
    } catch (const std::exception& e) {
      throw Error(info_.path, "cannot move the model to " + device.str() + ": " + first_line(e.what()));
    }
    model_->set_compute_dtype(dtype);
    model_->eval();
    if (optimize && device.is_cpu() && dtype == c10::ScalarType::Float) optimize_for_cpu();
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    torch::NoGradGuard no_grad;
    try {
      if (optimized_) {
        // The native network checks its input; the optimised graph would fail deep inside with
        // a message naming no shape.
        if (x.dim() != 4 || x.size(1) != info_.arch.in_channels)
          throw Error("model expects N x " + std::to_string(info_.arch.in_channels) + " x H x W input, got shape " +
                      c10::str(x.sizes()));
        return optimized_->forward({x}).toTensor();
      }
      return model_->forward(x);
    } catch (const Error& e) {
      throw Error(info_.path, e.what());
    } catch (const std::exception& e) {
      // LibTorch's messages carry a C++ stack trace; a per-file error must stay one line.
      throw Error(info_.path, "forward failed: " + first_line(e.what()));
    }
  }
  const ModelInfo& info() const override { return info_; }

 private:
  // fp32 on the CPU runs the network as TorchScript generated from our own spec (never the
  // file's code), frozen and optimised for inference: convolutions then keep prepacked oneDNN
  // weights and activations in oneDNN's blocked layout between layers, measured 1.2x faster
  // than the native modules by scripts/bench/run.sh (row "model, optimised vs native"). bf16 and
  // CUDA keep the native path, which the optimiser would not speed up there.
  void optimize_for_cpu() {
    try {
      torch::jit::Module script = to_torchscript(*model_, c10::Device(c10::kCPU));
      script.eval();
      optimized_ = torch::jit::optimize_for_inference(script);
    } catch (const std::exception& e) {
      throw Error(info_.path, "cannot optimise the model for CPU inference: " + first_line(e.what()));
    }
  }

  Autoencoder model_;
  ModelInfo info_;
  std::optional<torch::jit::Module> optimized_;
};

}  // namespace

namespace {
std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
}  // namespace

double load_probe_timeout_s() {
  const char* text = std::getenv(kLoadTimeoutVariable);
  if (text == nullptr || *text == '\0') return kDefaultLoadTimeoutS;
  char* end = nullptr;
  const double seconds = std::strtod(text, &end);
  if (*end != '\0' || !(seconds > 0 && seconds <= 86400))
    throw UsageError(std::string(kLoadTimeoutVariable) + "=" + text + ": expected seconds, more than 0 and at most 86400");
  return seconds;
}

// LibTorch's unpickler can be crashed by a crafted archive (SIGSEGV in ScriptTypeParser, found by
// fuzzing: tests/fuzz/known_crashes), which no C++ handler catches. A forked child loads the file
// first; a child that dies instead of exiting normally condemns the file with a clean error rather
// than taking the whole job down. The child only unpickles and exits: it runs no torch ops, so
// the parent's worker threads (absent in the child) are never needed. If it cannot fork, the load
// goes ahead unprobed. A child that has not finished within load_probe_timeout_s() is killed and
// the file refused: TorchScript runs while loading (a __setstate__ that loops would otherwise
// block the command forever, in the probe and then in the real load).
void refuse_if_it_crashes_the_loader(const std::string& path) {
  const double timeout_s = load_probe_timeout_s();
  const pid_t pid = fork();
  if (pid < 0) return;
  if (pid == 0) {
    try {
      torch::jit::load(path, c10::Device(c10::kCPU));
    } catch (...) {
    }
    _exit(0);  // no destructors or atexit handlers of the parent's state
  }
  int status = 0;
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0) return;
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout_s) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      throw Error(path, "loading it did not finish within " + number_text(timeout_s) +
                            " s (TorchScript in the file that never returns?); " + std::string(kLoadTimeoutVariable) +
                            " sets the limit in seconds");
    }
    usleep(5000);
  }
  if (WIFSIGNALED(status))
    throw Error(path, "a damaged or hostile model file: it crashes LibTorch's loader (signal " +
                          std::to_string(WTERMSIG(status)) + ")");
  // Sanitizer builds turn the crash into a report and exit code 1 instead of a signal.
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error(path, "a damaged or hostile model file: it crashes LibTorch's loader");
}

namespace {

ModelInfo checkpoint_model_info(const std::string& path, const CheckpointInfo& c) {
  ModelInfo info;
  info.path = path;
  info.file_kind = "checkpoint";
  info.arch = c.arch;
  info.noise = c.noise;
  info.iteration = c.iteration;
  info.val_psnr = c.best_val_psnr;
  info.project_version = c.project_version;
  info.format_version = c.format_version;
  if (!c.config_json.empty()) {
    const auto config = nlohmann::json::parse(c.config_json, nullptr, false);
    if (config.is_object()) info.train_data = config.value("data", "");
  }
  return info;
}

// The native network of an export, its parameters taken from the script module's attributes
// (named by flat_name, as the exporter wrote them).
Autoencoder native_from_export(const std::string& path, const ArchSpec& arch, const torch::jit::Module& module) {
  Autoencoder model = make_model(arch);
  size_t copied = 0;
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    const std::string name = flat_name(item.key());
    if (!module.hasattr(name) || !module.attr(name).isTensor())
      throw Error(path, "damaged export: parameter " + name + " is missing");
    const torch::Tensor stored = module.attr(name).toTensor();
    if (stored.sizes() != item.value().sizes() || stored.scalar_type() != torch::kFloat)
      throw Error(path, "damaged export: parameter " + name + " does not match the model's ArchSpec");
    item.value().copy_(stored);
    ++copied;
  }
  if (copied != module.named_parameters().size())
    throw Error(path, "damaged export: it holds parameters its ArchSpec has no place for");
  return model;
}

}  // namespace

c10::ScalarType parse_precision(const std::string& name) {
  if (name == "fp32") return torch::kFloat;
  if (name == "bf16") return torch::kBFloat16;
  throw UsageError("--precision " + name + ": expected fp32 or bf16");
}

LoadOptions load_options(const std::string& precision) {
  LoadOptions options;
  options.dtype = parse_precision(precision);
  return options;
}

namespace {

// The file as LibTorch reads it, with our metadata (empty for a checkpoint).
torch::jit::Module read_archive(const std::string& path, bool probe, std::string* metadata) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) throw Error(ErrorKind::kIo, path, "no such file");
  if (std::filesystem::is_directory(status)) throw Error(ErrorKind::kInvalidData, path, "is a directory, not a model file");
  require_regular_file(path);  // a FIFO would block the probe and then the load, forever

  if (probe) refuse_if_it_crashes_the_loader(path);

  // Both kinds are torch zip archives that torch::jit::load reads: an export carries our extra
  // file, a checkpoint (a torch::serialize archive) a bottleneck_info attribute. Loading onto the
  // CPU first keeps detection independent of the device.
  torch::jit::ExtraFilesMap extra{{kTorchScriptMetadataFile, ""}};
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, c10::Device(c10::kCPU), extra);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kCorrupt, path, "not a readable model file (corrupt or truncated?): " + first_line(e.what()));
  }
  *metadata = extra[kTorchScriptMetadataFile];
  if (metadata->empty() && !module.hasattr("bottleneck_info"))
    throw Error(ErrorKind::kInvalidData, path,
                "a torch archive but not a Bottleneck model (neither a checkpoint from "
                "`bottleneck train` nor a model from `bottleneck export`)");
  return module;
}

}  // namespace

std::unique_ptr<InferenceModel> load_model(const std::string& path, c10::Device device, const LoadOptions& options) {
  std::string metadata;
  const torch::jit::Module module = read_archive(path, options.probe, &metadata);
  if (!metadata.empty()) {
    ModelInfo info = parse_export_metadata(path, metadata);
    Autoencoder model = native_from_export(path, info.arch, module);
    return std::make_unique<NativeModel>(std::move(model), std::move(info), device, options.dtype, options.optimize);
  }
  LoadedCheckpoint loaded = load_checkpoint(path);
  ModelInfo info = checkpoint_model_info(path, loaded.info);
  return std::make_unique<NativeModel>(loaded.model, std::move(info), device, options.dtype, options.optimize);
}

LoadedNetwork load_network(const std::string& path) {
  LoadedNetwork out;
  const torch::jit::Module module = read_archive(path, true, &out.metadata_json);
  if (!out.metadata_json.empty()) {
    out.info = parse_export_metadata(path, out.metadata_json);
    out.model = native_from_export(path, out.info.arch, module);
    const auto j = nlohmann::json::parse(out.metadata_json, nullptr, false);
    if (j.is_object() && j.contains("training") && j["training"].is_object() && j["training"].contains("config") &&
        j["training"]["config"].is_object())
      out.config_json = j["training"]["config"].dump();
  } else {
    LoadedCheckpoint loaded = load_checkpoint(path);
    out.info = checkpoint_model_info(path, loaded.info);
    out.model = loaded.model;
    out.config_json = loaded.info.config_json;
  }
  out.model->eval();
  return out;
}

void copy_weights(const std::string& path, const ArchSpec& arch, torch::nn::Module& target) {
  std::string metadata;
  const torch::jit::Module module = read_archive(path, true, &metadata);
  ArchSpec stored;
  Autoencoder source{nullptr};
  if (!metadata.empty()) {
    stored = parse_export_metadata(path, metadata).arch;
    source = native_from_export(path, stored, module);
  } else {
    LoadedCheckpoint loaded = load_checkpoint(path);
    stored = loaded.info.arch;
    source = loaded.model;
  }
  if (to_json(stored) != to_json(arch))
    throw UsageError(path, "its network " + to_json(stored) + " is not the run's " + to_json(arch));
  torch::NoGradGuard no_grad;
  const auto from = source->named_parameters();
  for (auto& item : target.named_parameters()) {
    const torch::Tensor* value = from.find(item.key());
    if (!value || !value->sizes().equals(item.value().sizes()))
      throw Error(ErrorKind::kInvalidData, path, "parameter " + item.key() + " does not fit the run's network");
    item.value().copy_(*value);
  }
}

}  // namespace bottleneck

#include "formats/checkpoint.h"

#include <cmath>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "util/atomic_file.h"
#include "bottleneck/version.h"
#include "util/error.h"
#include "util/text_format.h"

namespace bottleneck {

namespace {

// Non-finite PSNRs (never validated) are stored as null: JSON has no NaN.
double number_or_nan(const nlohmann::json& j) { return j.is_number() ? j.get<double>() : std::nan(""); }

std::string info_to_json(const CheckpointInfo& info) {
  nlohmann::ordered_json j;
  j["format"] = kCheckpointFormat;
  j["format_version"] = kCheckpointVersion;
  j["project_version"] = info.project_version.empty() ? kVersion : info.project_version;
  j["iteration"] = info.iteration;
  j["best_val_psnr"] = json_number<nlohmann::json>(info.best_val_psnr);
  j["last_val_psnr"] = json_number<nlohmann::json>(info.last_val_psnr);
  j["noise"] = info.noise;
  j["loss_window_sum"] = info.loss_window_sum;
  j["loss_window_count"] = info.loss_window_count;
  j["arch"] = nlohmann::ordered_json::parse(to_json(info.arch));
  j["config"] = info.config_json.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json::parse(info.config_json);
  return j.dump();
}

// Tensors are mapped onto `device` as they are read, so state lands where the model lives.
torch::serialize::InputArchive open_archive(const std::string& path, torch::Device device) {
  read_file(path).size();  // clear messages for missing files and directories
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path, device);
  } catch (const std::exception& e) {
    throw Error(path, "not a readable checkpoint (corrupt or truncated file?): " + first_line(e.what()));
  }
  return archive;
}

CheckpointInfo parse_info(const std::string& path, torch::serialize::InputArchive& archive) {
  c10::IValue value;
  if (!archive.try_read("bottleneck_info", value) || !value.isString())
    throw Error(path, "not a Bottleneck checkpoint (no bottleneck_info record)");
  return parse_checkpoint_info(path, value.toStringRef());
}

}  // namespace

CheckpointInfo parse_checkpoint_info(const std::string& path, const std::string& json_text) {
  CheckpointInfo info;
  try {
    const auto j = nlohmann::json::parse(json_text);
    if (j.at("format").get<std::string>() != kCheckpointFormat)
      throw Error(path, "not a Bottleneck checkpoint (format " + j.at("format").dump() + ")");
    info.format_version = j.at("format_version").get<int64_t>();
    if (info.format_version > kCheckpointVersion)
      throw Error(path, "checkpoint format version " + std::to_string(info.format_version) +
                            " is newer than this build reads (" + std::to_string(kCheckpointVersion) +
                            "); upgrade bottleneck");
    info.project_version = j.at("project_version").get<std::string>();
    info.iteration = j.at("iteration").get<int64_t>();
    info.best_val_psnr = number_or_nan(j.at("best_val_psnr"));
    info.last_val_psnr = number_or_nan(j.at("last_val_psnr"));
    info.noise = j.at("noise").get<std::string>();
    info.loss_window_sum = j.value("loss_window_sum", 0.0);
    info.loss_window_count = j.value("loss_window_count", int64_t{0});
    info.arch = arch_spec_from_json(j.at("arch").dump());
    info.config_json = j.at("config").is_null() ? "" : j.at("config").dump(2);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(path, std::string("damaged checkpoint metadata: ") + first_line(e.what()));
  }
  return info;
}

void save_module_archive(const std::string& path, const torch::nn::Module& model,
                         const torch::optim::Optimizer* optimizer, const std::string& info_json) {
  torch::serialize::OutputArchive archive;
  archive.write("bottleneck_info", c10::IValue(info_json));
  torch::serialize::OutputArchive model_archive;
  model.save(model_archive);
  archive.write("model", model_archive);
  if (optimizer) {
    torch::serialize::OutputArchive optimizer_archive;
    optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  std::ostringstream bytes;
  try {
    archive.save_to(bytes);
  } catch (const c10::Error& e) {
    throw Error(path, "cannot serialise checkpoint: " + first_line(e.what()));
  }
  write_file_atomically(path, bytes.str());
}

void save_checkpoint(const std::string& path, const AutoencoderImpl& model,
                     const torch::optim::Optimizer* optimizer, const CheckpointInfo& info) {
  save_module_archive(path, model, optimizer, info_to_json(info));
}

CheckpointInfo read_checkpoint_info(const std::string& path) {
  auto archive = open_archive(path, torch::kCPU);
  return parse_info(path, archive);
}

void load_module_state(const std::string& path, torch::serialize::InputArchive& archive, torch::nn::Module& model,
                       torch::optim::Optimizer* optimizer) {
  // Module::load replaces each tensor with the stored one whatever its shape, so a file whose
  // weights belong to another network than its info says would load and fail later, in the
  // middle of a job: the shapes are compared here.
  std::vector<std::pair<std::string, std::vector<int64_t>>> expected;
  for (const auto& p : model.named_parameters()) expected.emplace_back(p.key(), p.value().sizes().vec());
  for (const auto& b : model.named_buffers()) expected.emplace_back(b.key(), b.value().sizes().vec());
  try {
    torch::serialize::InputArchive model_archive;
    archive.read("model", model_archive);
    model.load(model_archive);
    const auto params = model.named_parameters();
    const auto buffers = model.named_buffers();
    for (const auto& [name, shape] : expected) {
      const torch::Tensor* t = params.find(name);
      if (!t) t = buffers.find(name);
      if (t && t->sizes().vec() != shape)
        throw Error(ErrorKind::kCorrupt, path, "weights do not match the network it describes: " + name + " has shape " +
                              shape_text(t->sizes().vec()) + ", the network needs " + shape_text(shape));
    }
    if (optimizer) {
      torch::serialize::InputArchive optimizer_archive;
      if (!archive.try_read("optimizer", optimizer_archive))
        throw Error(path, "holds no optimizer state (cannot resume from it)");
      optimizer->load(optimizer_archive);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(path, "weights do not match the network it describes: " + first_line(e.what()));
  }
}

void load_checkpoint_state(const std::string& path, AutoencoderImpl& model,
                           torch::optim::Optimizer* optimizer) {
  const auto params = model.parameters();
  auto archive = open_archive(path, params.empty() ? torch::Device(torch::kCPU) : params.front().device());
  const CheckpointInfo info = parse_info(path, archive);
  if (to_json(info.arch) != to_json(model.spec()))
    throw Error(path, "checkpoint is for a different network: " + to_json(info.arch));
  load_module_state(path, archive, model, optimizer);
}

LoadedCheckpoint load_checkpoint(const std::string& path) {
  LoadedCheckpoint loaded;
  loaded.info = read_checkpoint_info(path);
  loaded.model = make_model(loaded.info.arch);
  load_checkpoint_state(path, *loaded.model, nullptr);
  loaded.model->eval();
  return loaded;
}

}  // namespace bottleneck

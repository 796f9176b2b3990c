#include "codec/codec_file.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "bottleneck/version.h"
#include "codec/cdf.h"
#include "codec/codec_trainer.h"
#include "formats/checkpoint.h"
#include "formats/model_file.h"
#include "inference/shipped_models.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/text_format.h"

namespace fs = std::filesystem;

namespace bottleneck {
namespace {

// FNV-1a with the 128-bit parameters of the FNV specification (draft-eastlake-fnv).
class Fnv128 {
 public:
  void add(const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < size; ++i) h_ = (h_ ^ p[i]) * kPrime;
  }
  void add_u64(uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
    add(b, 8);
  }
  ModelId digest() const {
    ModelId id;
    for (int i = 0; i < 16; ++i) id[static_cast<size_t>(i)] = static_cast<uint8_t>(h_ >> (8 * (15 - i)));
    return id;
  }

 private:
  __extension__ using U128 = unsigned __int128;
  static constexpr U128 kPrime = (U128{1} << 88) | 0x13B;
  U128 h_ = (U128{0x6c62272e07bb0142ULL} << 64) | 0x62b821756295c58dULL;
};


ModelId parse_id(const std::string& hex, const std::string& path) {
  ModelId id{};
  if (hex.size() != 32) throw Error(ErrorKind::kCorrupt, path, "model id '" + hex + "' is not 32 hex digits");
  for (size_t i = 0; i < 16; ++i) {
    unsigned v = 0;
    if (std::sscanf(hex.substr(2 * i, 2).c_str(), "%2x", &v) != 1)
      throw Error(ErrorKind::kCorrupt, path, "model id '" + hex + "' is not 32 hex digits");
    id[i] = static_cast<uint8_t>(v);
  }
  return id;
}

std::string info_json(const CodecModelInfo& info) {
  nlohmann::ordered_json j;
  j["format"] = kCodecModelFormat;
  j["format_version"] = info.format_version;
  j["project_version"] = kVersion;
  j["model_id"] = model_id_hex(info.id);
  j["codec"] = nlohmann::json::parse(to_json(info.spec));
  j["lambdas"] = info.lambdas;
  j["tail_mass"] = kCodecTailMass;
  j["training"] = {{"iteration", info.iteration},
                   {"best_val_rd", json_number<nlohmann::json>(info.best_val_rd)},
                   {"checkpoint_project_version", info.checkpoint_project_version}};
  return j.dump();
}

// The bottleneck_info record's format, or "" when the archive has none.
std::string format_of(torch::serialize::InputArchive& archive, nlohmann::json* out) {
  c10::IValue value;
  if (!archive.try_read("bottleneck_info", value) || !value.isString()) return "";
  nlohmann::json j = nlohmann::json::parse(value.toStringRef());
  const std::string format = j.at("format").get<std::string>();
  if (out) *out = std::move(j);
  return format;
}

// A regular file, its bytes, and LibTorch unharmed by them (refuse_if_it_crashes_the_loader).
std::string archive_bytes(const std::string& path) {
  std::error_code ec;
  if (fs::exists(path, ec) && !fs::is_regular_file(path, ec))
    throw Error(ErrorKind::kInvalidData, path, "not a regular file");  // a FIFO would block the reads
  std::string bytes = read_file(path);
  refuse_if_it_crashes_the_loader(path);
  return bytes;
}

torch::serialize::InputArchive open(const std::string& path, const std::string& bytes) {
  torch::serialize::InputArchive archive;
  try {
    std::istringstream in(bytes);
    archive.load_from(in, torch::kCPU);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kCorrupt, path, "not a readable codec model (corrupt or truncated file?): " + first_line(e.what()));
  }
  return archive;
}

}  // namespace

ModelId codec_model_id(const CodecModelImpl& model, const std::vector<CdfTable>& tables) {
  torch::NoGradGuard no_grad;
  Fnv128 h;
  const std::string spec = to_json(model.spec());
  h.add(spec.data(), spec.size());
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& p : model.named_parameters()) tensors[p.key()] = p.value();
  for (const auto& b : model.named_buffers()) tensors[b.key()] = b.value();
  for (const auto& [name, tensor] : tensors) {
    h.add(name.c_str(), name.size() + 1);
    h.add_u64(static_cast<uint64_t>(tensor.dim()));
    for (int64_t s : tensor.sizes()) h.add_u64(static_cast<uint64_t>(s));
    const torch::Tensor t = tensor.detach().to(torch::kCPU, torch::kFloat).contiguous();
    const float* v = t.data_ptr<float>();
    std::vector<uint8_t> bytes(static_cast<size_t>(t.numel()) * 4);
    for (int64_t i = 0; i < t.numel(); ++i) {
      uint32_t bits;
      std::memcpy(&bits, v + i, 4);
      for (int k = 0; k < 4; ++k) bytes[static_cast<size_t>(i) * 4 + static_cast<size_t>(k)] = static_cast<uint8_t>(bits >> (8 * k));
    }
    h.add(bytes.data(), bytes.size());
  }
  const std::vector<uint8_t> table_bytes = serialize_cdf_tables(tables);
  h.add(table_bytes.data(), table_bytes.size());
  return h.digest();
}

CodecModelInfo write_codec_model(const std::string& path, CodecModelImpl& model, CodecModelInfo meta) {
  torch::NoGradGuard no_grad;
  model.eval();
  if (static_cast<int>(meta.lambdas.size()) != model.spec().rates)
    throw Error(ErrorKind::kInvalidData, path, std::to_string(meta.lambdas.size()) + " lambdas for " +
                                                   std::to_string(model.spec().rates) + " rates");
  torch::Tensor step_gains;  // undefined for a "gained" prior: one table set
  if (model.spec().prior == "step") {
    std::vector<torch::Tensor> rows;
    for (int i = 0; i < model.frozen_steps(); ++i) rows.push_back(model.gains_at(model.step_position(i)).flatten());
    step_gains = torch::stack(rows);
  }
  const FrozenPrior frozen = freeze_prior(*model.prior, kCodecTailMass, step_gains);
  meta.spec = model.spec();
  meta.id = codec_model_id(model, frozen.tables);
  meta.project_version = kVersion;
  // Format 2 is what a "step" prior needs (a table set per step); "gained" models stay 1, so
  // the builds before format 2 still read them.
  meta.format_version = model.spec().prior == "step" ? kCodecModelVersion : 1;
  const std::vector<uint8_t> tables = serialize_cdf_tables(frozen.tables);

  torch::serialize::OutputArchive archive;
  archive.write("bottleneck_info", c10::IValue(info_json(meta)));
  torch::serialize::OutputArchive weights;
  model.save(weights);
  archive.write("model", weights);
  archive.write("cdf_tables", torch::from_blob(const_cast<uint8_t*>(tables.data()), {static_cast<int64_t>(tables.size())},
                                               torch::kUInt8).clone());
  std::ostringstream bytes;
  try {
    archive.save_to(bytes);
  } catch (const c10::Error& e) {
    throw Error(path, "cannot serialise the codec model: " + first_line(e.what()));
  }
  const std::string data = bytes.str();
  write_atomically(path, [&](const std::string& tmp) {
    {
      std::ofstream out(tmp, std::ios::binary);
      out.write(data.data(), static_cast<std::streamsize>(data.size()));
      if (!out.flush()) throw Error(ErrorKind::kIo, path, "cannot write");
    }
    // The file must reproduce the model it was made from before it takes the name.
    const LoadedCodec back = load_codec_model(tmp);
    if (back.info.id != meta.id) throw Error(path, "the written model does not read back as written");
  });
  meta.path = path;
  return meta;
}

CodecExportResult export_codec_model(const std::string& checkpoint, const std::string& output) {
  if (output.empty()) throw UsageError("export: give --output FILE" + std::string(kCodecModelExtension));
  refuse_output_over_input(output, {checkpoint}, "output");
  const CodecCheckpointInfo ck = read_codec_checkpoint_info(checkpoint);
  CodecModel model(ck.spec, ck.lambdas);
  load_codec_checkpoint_state(checkpoint, *model, nullptr);
  CodecModelInfo meta;
  meta.lambdas = ck.lambdas;
  meta.iteration = ck.iteration;
  meta.best_val_rd = ck.best_val_rd;
  meta.checkpoint_project_version = ck.project_version;
  CodecExportResult result;
  result.info = write_codec_model(output, *model, meta);
  for (const auto& p : model->parameters()) result.parameters += p.numel();
  std::error_code ec;
  result.bytes = fs::file_size(output, ec);
  return result;
}

LoadedCodec load_codec_model(const std::string& path) {
  torch::serialize::InputArchive archive = open(path, archive_bytes(path));
  LoadedCodec codec;
  CodecModelInfo& info = codec.info;
  info.path = path;
  ModelId stored{};
  try {
    nlohmann::json j;
    const std::string format = format_of(archive, &j);
    if (format.empty()) throw Error(ErrorKind::kInvalidData, path, "not a Bottleneck codec model (no bottleneck_info record)");
    if (format == kCodecCheckpointFormat)
      throw Error(ErrorKind::kInvalidData, path,
                  "is a codec training checkpoint, not a codec model; make one with `bottleneck export "
                  "--checkpoint " + path + " --output codec" + kCodecModelExtension + "`");
    if (format != kCodecModelFormat) throw Error(ErrorKind::kInvalidData, path, "not a codec model (format " + format + ")");
    info.format_version = j.at("format_version").get<int64_t>();
    if (info.format_version < 1 || info.format_version > kCodecModelVersion)
      throw Error(ErrorKind::kUnsupported, path, "codec model format version " + std::to_string(info.format_version) +
                                                     " is not one this build reads (1.." +
                                                     std::to_string(kCodecModelVersion) + ")");
    info.project_version = j.at("project_version").get<std::string>();
    info.spec = codec_spec_from_json(j.at("codec").dump());
    info.lambdas = j.at("lambdas").get<std::vector<double>>();
    if (static_cast<int>(info.lambdas.size()) != info.spec.rates)
      throw Error(ErrorKind::kCorrupt, path, std::to_string(info.lambdas.size()) + " lambdas for " +
                                                 std::to_string(info.spec.rates) + " rates");
    stored = parse_id(j.at("model_id").get<std::string>(), path);
    const auto& t = j.at("training");
    info.iteration = t.at("iteration").get<int64_t>();
    info.best_val_rd = t.at("best_val_rd").is_number() ? t.at("best_val_rd").get<double>()
                                                       : std::numeric_limits<double>::quiet_NaN();
    info.checkpoint_project_version = t.at("checkpoint_project_version").get<std::string>();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kCorrupt, path, std::string("damaged codec model metadata: ") + first_line(e.what()));
  }

  codec.model = CodecModel(info.spec, info.lambdas);
  load_module_state(path, archive, *codec.model, nullptr);
  torch::Tensor tables;
  if (!archive.try_read("cdf_tables", tables) || tables.scalar_type() != torch::kUInt8 || tables.dim() != 1)
    throw Error(ErrorKind::kCorrupt, path, "no CDF tables");
  tables = tables.contiguous();
  codec.prior.tables = parse_cdf_tables(tables.data_ptr<uint8_t>(), static_cast<size_t>(tables.numel()), path);
  const size_t want_tables = static_cast<size_t>(codec.model->frozen_steps()) * static_cast<size_t>(info.spec.m);
  if (codec.prior.tables.size() != want_tables)
    throw Error(ErrorKind::kCorrupt, path, std::to_string(codec.prior.tables.size()) + " CDF tables for " +
                                               std::to_string(info.spec.m) + " latent channels at " +
                                               std::to_string(codec.model->frozen_steps()) + " steps");
  info.id = codec_model_id(*codec.model, codec.prior.tables);
  if (info.id != stored)
    throw Error(ErrorKind::kCorrupt, path, "its contents hash to model id " + model_id_hex(info.id) +
                                               ", not the " + model_id_hex(stored) + " it records (damaged or edited)");
  const torch::Tensor medians = codec.model->prior->medians().contiguous();
  codec.prior.medians.assign(medians.data_ptr<float>(), medians.data_ptr<float>() + medians.numel());
  codec.model->eval();
  return codec;
}

CodecFileKind codec_file_kind(const std::string& path) {
  try {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return CodecFileKind::kNone;
    // Only files that name a codec format are unpickled here (torch archives store the info
    // record's text as it is): the others go to their own readers, which probe them once.
    const std::string bytes = read_file(path);
    if (bytes.find("bottleneck-codec-") == std::string::npos) return CodecFileKind::kNone;
    refuse_if_it_crashes_the_loader(path);
    torch::serialize::InputArchive archive = open(path, bytes);
    const std::string format = format_of(archive, nullptr);
    if (format == kCodecModelFormat) return CodecFileKind::kModel;
    if (format == kCodecCheckpointFormat) return CodecFileKind::kCheckpoint;
  } catch (const std::exception&) {
  }
  return CodecFileKind::kNone;
}

std::vector<std::string> codec_model_files(const std::vector<std::string>& dirs) {
  std::vector<std::string> out;
  for (const std::string& dir : dirs) {
    std::error_code ec;
    std::vector<std::string> names;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string ext = it->path().extension().string();
      for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::error_code file_ec;
      if (ext == kCodecModelExtension && fs::is_regular_file(it->path(), file_ec)) names.push_back(it->path().filename().string());
    }
    std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
      return (a == kShippedCodecModelName) != (b == kShippedCodecModelName) ? a == kShippedCodecModelName : a < b;
    });
    for (const std::string& n : names) out.push_back((fs::path(dir) / n).string());
  }
  return out;
}

std::string shipped_codec_model() {
  std::string searched;
  std::error_code ec;
  for (const std::string& dir : shipped_model_dirs()) {
    const fs::path candidate = fs::path(dir) / kShippedCodecModelName;
    if (fs::is_regular_file(candidate, ec)) return candidate.string();
    searched += (searched.empty() ? "" : ", ") + dir;
  }
  throw Error(ErrorKind::kIo, kShippedCodecModelName, "the shipped codec model is not installed (searched " + searched +
                                                          "); pass --model FILE" + kCodecModelExtension);
}

}  // namespace bottleneck

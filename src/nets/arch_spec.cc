#include "nets/arch_spec.h"

#include <climits>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace bottleneck {
namespace {

// Sanity ceilings, far above anything that trains on one GPU: a corrupt or hostile spec in a
// checkpoint must fail validation instead of asking for terabytes of weights.
constexpr int kMaxDepth = 6;
constexpr int kMaxChannels = 4096;
constexpr int kMaxConvsPerLevel = 16;
constexpr int kMaxInputSize = 4096;
constexpr int64_t kMaxDenseWeights = int64_t{1} << 28;  // 1 GiB of float weights per dense layer

// ordered_json keeps the keys in the order the struct declares them, so the text is stable.
using Json = nlohmann::ordered_json;

const char* const kFieldNames[] = {
    "kind",       "in_channels", "out_channels", "widths", "convs_per_level", "bottleneck_channels",
    "activation", "head",        "upsample",     "latent", "input_size", "depth"};

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out;
}

[[noreturn]] void invalid(const std::string& reason) { throw UsageError("arch spec", reason); }

// One table per enum: its values in declaration order with their spellings.
template <class E>
struct Spelling {
  E value;
  const char* name;
};
constexpr Spelling<ArchKind> kKinds[] = {{ArchKind::kUNet, "unet"}, {ArchKind::kConvAE, "conv-ae"}};
constexpr Spelling<Activation> kActivations[] = {
    {Activation::kRelu, "relu"}, {Activation::kLeakyRelu, "leaky_relu"}, {Activation::kSilu, "silu"}};
constexpr Spelling<Head> kHeads[] = {
    {Head::kResidual, "residual"}, {Head::kSigmoid, "sigmoid"}, {Head::kLinear, "linear"}};
constexpr Spelling<Upsample> kUpsamples[] = {{Upsample::kTransposed, "transposed"},
                                             {Upsample::kBilinear, "bilinear"}};

template <class E, size_t N>
const char* spelling(const Spelling<E> (&table)[N], E value) {
  for (const auto& s : table)
    if (s.value == value) return s.name;
  return "?";  // only a value cast from an out-of-range integer
}

template <class E, size_t N>
E parse_one_of(const char* field, const Spelling<E> (&table)[N], const std::string& text) {
  std::vector<std::string> names;
  for (const auto& s : table) {
    if (text == s.name) return s.value;
    names.push_back(quoted(s.name));
  }
  invalid(std::string(field) + " must be one of " + join(names) + ", got " + quoted(text));
}

[[noreturn]] void bad_json(const std::string& reason) { throw Error("arch spec", reason); }

int json_int(const Json& v, const std::string& field) {
  if (!v.is_number_integer()) bad_json(field + " must be an integer, got " + v.dump());
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT_MAX)) bad_json(field + " is out of range: " + v.dump());
    return static_cast<int>(u);
  }
  const auto i = v.get<int64_t>();
  if (i < INT_MIN || i > INT_MAX) bad_json(field + " is out of range: " + v.dump());
  return static_cast<int>(i);
}

std::string json_string(const Json& v, const std::string& field) {
  if (!v.is_string()) bad_json(field + " must be a string, got " + v.dump());
  return v.get<std::string>();
}

// An unknown spelling inside a file is a broken file (Error), not a bad command line.
template <class E>
E json_enum(const Json& v, const std::string& field, E (*parse)(const std::string&)) {
  const std::string text = json_string(v, field);
  try {
    return parse(text);
  } catch (const UsageError& e) {
    bad_json(e.reason());
  }
}

}  // namespace

const char* name_of(ArchKind kind) { return spelling(kKinds, kind); }
const char* name_of(Activation activation) { return spelling(kActivations, activation); }
const char* name_of(Head head) { return spelling(kHeads, head); }
const char* name_of(Upsample upsample) { return spelling(kUpsamples, upsample); }
ArchKind parse_arch_kind(const std::string& text) { return parse_one_of("kind", kKinds, text); }
Activation parse_activation(const std::string& text) {
  return parse_one_of("activation", kActivations, text);
}
Head parse_head(const std::string& text) { return parse_one_of("head", kHeads, text); }
Upsample parse_upsample(const std::string& text) {
  return parse_one_of("upsample", kUpsamples, text);
}

void validate(const ArchSpec& spec) {
  // The enums can only hold other values through a cast; the spellings catch those too.
  for (const char* name : {name_of(spec.kind), name_of(spec.activation), name_of(spec.head),
                           name_of(spec.upsample)})
    if (std::string(name) == "?") invalid("an enum field holds an unknown value");
  if (spec.in_channels != 1 && spec.in_channels != 3)
    invalid("in_channels must be 1 or 3, got " + std::to_string(spec.in_channels));
  if (spec.out_channels != 1 && spec.out_channels != 3)
    invalid("out_channels must be 1 or 3, got " + std::to_string(spec.out_channels));
  if (spec.widths.empty()) invalid("widths must not be empty");
  if (spec.depth() > kMaxDepth)
    invalid("depth (widths.size() - 1) must be <= " + std::to_string(kMaxDepth) + ", got " +
            std::to_string(spec.depth()));
  for (size_t i = 0; i < spec.widths.size(); ++i) {
    const int w = spec.widths[i];
    if (w <= 0 || w > kMaxChannels)
      invalid("widths[" + std::to_string(i) + "] must be in 1.." + std::to_string(kMaxChannels) +
              ", got " + std::to_string(w));
  }
  if (spec.convs_per_level < 1 || spec.convs_per_level > kMaxConvsPerLevel)
    invalid("convs_per_level must be in 1.." + std::to_string(kMaxConvsPerLevel) + ", got " +
            std::to_string(spec.convs_per_level));
  if (spec.bottleneck_channels < 0 || spec.bottleneck_channels > kMaxChannels)
    invalid("bottleneck_channels must be in 0.." + std::to_string(kMaxChannels) + ", got " +
            std::to_string(spec.bottleneck_channels));
  if (spec.latent < 0) invalid("latent must be >= 0, got " + std::to_string(spec.latent));
  if (spec.kind == ArchKind::kConvAE && spec.bottleneck_channels == 0 && !spec.dense())
    invalid("bottleneck_channels must be > 0 for kind \"conv-ae\" without a dense latent, got 0");
  if (spec.dense()) {
    if (spec.kind != ArchKind::kConvAE)
      invalid("latent (a dense code) needs kind \"conv-ae\", got kind " + quoted(name_of(spec.kind)));
    if (spec.input_size < 1 || spec.input_size > kMaxInputSize)
      invalid("input_size must be in 1.." + std::to_string(kMaxInputSize) + " with a dense latent, got " +
              std::to_string(spec.input_size));
    const int grid = spec.code_grid();
    const int64_t flat = int64_t{spec.bottleneck_channels > 0 ? spec.bottleneck_channels : spec.widths.back()} * grid * grid;
    if (flat * spec.latent > kMaxDenseWeights)
      invalid("a dense latent of " + std::to_string(spec.latent) + " from " + std::to_string(flat) +
              " values needs more than " + std::to_string(kMaxDenseWeights) + " weights: shrink input_size or latent");
  } else if (spec.input_size != 0) {
    invalid("input_size is only for a dense latent (latent > 0), got " + std::to_string(spec.input_size));
  }
  if (spec.head == Head::kResidual) {
    if (spec.kind != ArchKind::kUNet)
      invalid("head \"residual\" needs kind \"unet\", got kind " + quoted(name_of(spec.kind)));
    if (spec.out_channels != spec.in_channels)
      invalid("head \"residual\" needs out_channels == in_channels, got out_channels " +
              std::to_string(spec.out_channels) + " and in_channels " +
              std::to_string(spec.in_channels));
  }
}

std::string to_json(const ArchSpec& spec) {
  Json j;
  j["kind"] = name_of(spec.kind);
  j["in_channels"] = spec.in_channels;
  j["out_channels"] = spec.out_channels;
  j["widths"] = spec.widths;
  j["convs_per_level"] = spec.convs_per_level;
  j["bottleneck_channels"] = spec.bottleneck_channels;
  j["activation"] = name_of(spec.activation);
  j["head"] = name_of(spec.head);
  j["upsample"] = name_of(spec.upsample);
  // Only when set, so that the files of networks without a dense code stay as they were.
  if (spec.dense()) {
    j["latent"] = spec.latent;
    j["input_size"] = spec.input_size;
  }
  j["depth"] = spec.depth();
  return j.dump();
}

ArchSpec arch_spec_from_json(const std::string& json_text) {
  Json j;
  try {
    j = Json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    bad_json(std::string("malformed JSON: ") + e.what());
  }
  if (!j.is_object()) bad_json("expected a JSON object, got " + std::string(j.type_name()));

  ArchSpec spec;
  bool has_depth = false;
  int depth = 0;
  for (const auto& [key, v] : j.items()) {
    if (key == "kind") {
      spec.kind = json_enum(v, key, parse_arch_kind);
    } else if (key == "in_channels") {
      spec.in_channels = json_int(v, key);
    } else if (key == "out_channels") {
      spec.out_channels = json_int(v, key);
    } else if (key == "widths") {
      if (!v.is_array()) bad_json("widths must be an array of integers, got " + v.dump());
      spec.widths.clear();
      for (size_t i = 0; i < v.size(); ++i)
        spec.widths.push_back(json_int(v[i], "widths[" + std::to_string(i) + "]"));
    } else if (key == "convs_per_level") {
      spec.convs_per_level = json_int(v, key);
    } else if (key == "bottleneck_channels") {
      spec.bottleneck_channels = json_int(v, key);
    } else if (key == "activation") {
      spec.activation = json_enum(v, key, parse_activation);
    } else if (key == "head") {
      spec.head = json_enum(v, key, parse_head);
    } else if (key == "upsample") {
      spec.upsample = json_enum(v, key, parse_upsample);
    } else if (key == "latent") {
      spec.latent = json_int(v, key);
    } else if (key == "input_size") {
      spec.input_size = json_int(v, key);
    } else if (key == "depth") {
      depth = json_int(v, key);
      has_depth = true;
    } else {
      std::vector<std::string> known;
      for (const char* name : kFieldNames) known.push_back(name);
      bad_json("unknown key " + quoted(key) + " (known: " + join(known) + ")");
    }
  }
  if (has_depth && depth != spec.depth())
    bad_json("depth " + std::to_string(depth) + " does not match widths (" +
             std::to_string(spec.widths.size()) + " levels = depth " +
             std::to_string(spec.depth()) + ")");
  try {
    validate(spec);
  } catch (const UsageError& e) {
    // A bad spec inside a file is a broken file, not a bad command line.
    bad_json(e.reason());
  }
  return spec;
}

namespace {

struct Preset {
  const char* name;
  ArchSpec spec;  // channels are filled in by preset_arch
};

std::vector<Preset> presets() {
  ArchSpec unet_s;
  unet_s.widths = {16, 32, 64, 128};
  ArchSpec unet_m;
  unet_m.widths = {32, 64, 128};
  ArchSpec unet_l;
  unet_l.widths = {32, 64, 128, 256};
  ArchSpec conv_ae;
  conv_ae.kind = ArchKind::kConvAE;
  conv_ae.widths = {32, 64, 128};
  conv_ae.bottleneck_channels = 16;
  conv_ae.head = Head::kSigmoid;
  return {{"unet-s", unet_s}, {"unet-m", unet_m}, {"unet-l", unet_l}, {"conv-ae", conv_ae}};
}

}  // namespace

ArchSpec preset_arch(const std::string& name, int channels) {
  if (channels != 1 && channels != 3)
    throw UsageError("channels must be 1 or 3, got " + std::to_string(channels));
  for (const Preset& p : presets()) {
    if (name != p.name) continue;
    ArchSpec spec = p.spec;
    spec.in_channels = channels;
    spec.out_channels = channels;
    validate(spec);
    return spec;
  }
  throw UsageError("unknown architecture preset " + quoted(name) +
                   " (known: " + join(preset_arch_names()) + ")");
}

std::vector<std::string> preset_arch_names() {
  std::vector<std::string> names;
  for (const Preset& p : presets()) names.push_back(p.name);
  return names;
}

}  // namespace bottleneck

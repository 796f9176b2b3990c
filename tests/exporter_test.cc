#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <tuple>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>
#include <torch/torch.h>

#include "util/atomic_file.h"
#include "formats/checkpoint.h"
#include "util/error.h"
#include "formats/exporter.h"
#include "formats/model_file.h"
#include "nets/models.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using bottleneck::test::TempDir;

namespace {

struct Combo {
  std::string kind;
  int channels;
  std::string head;
  std::string upsample;
  int depth;
  int convs;
  std::string activation;
  bool squeeze;  // unet: a squeeze/expand pair around the lowest level; conv-ae always has one
};

// Small widths keep 800 models fast; distinct per level so a layer wired to the wrong level
// fails on shapes.
ArchSpec spec_of(const Combo& c) {
  ArchSpec s;
  s.kind = parse_arch_kind(c.kind);
  s.in_channels = c.channels;
  s.out_channels = c.channels;
  const std::vector<int> widths = {4, 6, 8, 10, 12};
  s.widths.assign(widths.begin(), widths.begin() + c.depth + 1);
  s.convs_per_level = c.convs;
  s.bottleneck_channels = c.squeeze ? 3 : 0;
  s.activation = parse_activation(c.activation);
  s.head = parse_head(c.head);
  s.upsample = parse_upsample(c.upsample);
  validate(s);
  return s;
}

// Every architecture the CLI can build: both kinds, 1 and 3 channels, every head valid for the
// kind, both upsamplings, depths 1..4, 1 and 2 convs per level, every activation, with and
// without a squeeze.
std::vector<Combo> all_combos() {
  std::vector<Combo> combos;
  for (std::string kind : {"unet", "conv-ae"})
    for (int channels : {1, 3})
      for (std::string head : {"residual", "sigmoid", "linear"})
        for (std::string upsample : {"transposed", "bilinear"})
          for (int depth = 1; depth <= 4; ++depth)
            for (int convs : {1, 2})
              for (std::string activation : {"relu", "leaky_relu", "silu"})
                for (bool squeeze : {false, true}) {
                  if (kind == "conv-ae" && (head == "residual" || !squeeze)) continue;
                  combos.push_back({kind, channels, head, upsample, depth, convs, activation, squeeze});
                }
  return combos;
}

CheckpointInfo info_for(const ArchSpec& arch) {
  CheckpointInfo info;
  info.arch = arch;
  info.iteration = 42;
  info.best_val_psnr = 31.25;
  info.last_val_psnr = 30.5;
  info.noise = "gaussian:25";
  info.config_json = R"({"data": "/data/train/gray400", "iters": 42})";
  return info;
}

// A random network saved as a checkpoint and exported from it, as `bottleneck export` does.
Autoencoder export_random(const ArchSpec& arch, const std::string& ckpt, const std::string& out,
                          uint64_t seed) {
  torch::manual_seed(seed);
  Autoencoder model = make_model(arch);
  model->eval();
  save_checkpoint(ckpt, *model, nullptr, info_for(arch));
  ExportOptions options;
  options.checkpoint = ckpt;
  options.output = out;
  export_model(options);
  return model;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes()) return INFINITY;
  return (a.to(torch::kCPU) - b.to(torch::kCPU)).abs().max().item<double>();
}

const std::vector<std::vector<int64_t>> kOddShapes = {{1, 0, 37, 53}, {2, 0, 1, 1}, {1, 0, 19, 8}};

std::vector<int64_t> with_channels(std::vector<int64_t> shape, int channels) {
  shape[1] = channels;
  return shape;
}

std::string expect_load_error(const std::string& path) {
  try {
    load_model(path, torch::kCPU);
  } catch (const Error& e) {
    EXPECT_EQ(e.path(), path);
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error for " << path;
  return "";
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void write_floats(const std::string& path, const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kCPU, torch::kFloat).contiguous();
  write_bytes(path, std::string(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * sizeof(float)));
}

torch::Tensor read_floats(const std::string& path, const std::vector<int64_t>& shape) {
  const std::string bytes = read_file(path);
  torch::Tensor t = torch::empty(shape, torch::kFloat);
  if (bytes.size() != static_cast<size_t>(t.numel()) * sizeof(float)) return torch::full({1}, NAN);
  std::memcpy(t.data_ptr<float>(), bytes.data(), bytes.size());
  return t;
}

std::string combo_name(const ArchSpec& s) { return to_json(s); }

}  // namespace

// Every architecture, in four shards (kind x channels) that ctest runs side by side.
class ExporterMatrix : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(ExporterMatrix, EveryArchitectureMatchesTheNativeModuleInCpp) {
  const auto& [kind, channels] = GetParam();
  // The profiling executor re-optimises each module for each new input shape, which costs more
  // than these tiny models; the ops are the same either way, and the other tests (Python,
  // load_model) run the default executor.
  torch::jit::GraphOptimizerEnabledGuard no_optimizer(false);
  TempDir dir;
  std::vector<Combo> combos;
  for (const Combo& c : all_combos())
    if (c.kind == kind && c.channels == channels) combos.push_back(c);
  ASSERT_EQ(combos.size(), kind == "unet" ? 3u * 2 * 4 * 2 * 3 * 2 : 2u * 2 * 4 * 2 * 3);
  double worst = 0, worst_encode = 0;
  uint64_t seed = channels * 1000;
  for (const Combo& c : combos) {
    const ArchSpec spec = spec_of(c);
    const std::string ckpt = dir / "m.ckpt", pt = dir / "m.pt";
    Autoencoder native = export_random(spec, ckpt, pt, ++seed);
    torch::jit::Module loaded = torch::jit::load(pt);
    torch::NoGradGuard no_grad;
    for (const auto& shape : kOddShapes) {
      const torch::Tensor x = torch::rand(with_channels(shape, c.channels));
      const double d = max_diff(loaded.forward({x}).toTensor(), native->forward(x));
      EXPECT_LE(d, 1e-5) << combo_name(spec) << " input " << x.sizes();
      worst = std::max(worst, d);
    }
    const torch::Tensor x = torch::rand({1, c.channels, 37, 53});
    const double d = max_diff(loaded.get_method("encode")({x}).toTensor(), native->encode(x));
    EXPECT_LE(d, 1e-5) << combo_name(spec) << " encode";
    worst_encode = std::max(worst_encode, d);
    if (HasFailure()) break;  // one architecture's report is enough
  }
  std::cout << combos.size() << " architectures, max abs diff forward " << worst << ", encode "
            << worst_encode << "\n";
}

INSTANTIATE_TEST_SUITE_P(KindsAndChannels, ExporterMatrix,
                         ::testing::Combine(::testing::Values("unet", "conv-ae"), ::testing::Values(1, 3)),
                         [](const auto& info) {
                           std::string kind = std::get<0>(info.param);
                           if (kind == "conv-ae") kind = "ConvAE";
                           return kind + "_" + std::to_string(std::get<1>(info.param)) + "ch";
                         });

TEST(Exporter, PythonLoadsTheExportAndComputesTheSame) {
  if (!bottleneck::test::system_python_has("torch")) GTEST_SKIP() << "no torch in " << bottleneck::test::kSystemPython;
  TempDir dir;
  const std::vector<Combo> combos = {
      {"unet", 1, "residual", "transposed", 2, 2, "relu", false},
      {"unet", 3, "sigmoid", "bilinear", 3, 1, "leaky_relu", true},
      {"unet", 1, "linear", "bilinear", 4, 2, "silu", false},
      {"conv-ae", 3, "linear", "transposed", 1, 2, "silu", true},
      {"conv-ae", 1, "sigmoid", "bilinear", 4, 1, "relu", true},
  };
  struct Case {
    std::string out, meta;
    std::vector<int64_t> shape;
    torch::Tensor expected;
  };
  std::vector<Case> cases;
  std::string manifest;
  for (size_t i = 0; i < combos.size(); ++i) {
    const std::string id = std::to_string(i);
    const ArchSpec spec = spec_of(combos[i]);
    Autoencoder native = export_random(spec, dir / (id + ".ckpt"), dir / (id + ".pt"), 100 + i);
    torch::NoGradGuard no_grad;
    for (size_t k = 0; k < kOddShapes.size(); ++k) {
      const std::string cid = id + "_" + std::to_string(k);
      Case c{dir / (cid + ".out"), dir / (cid + ".json"), with_channels(kOddShapes[k], spec.in_channels), {}};
      const torch::Tensor x = torch::rand(c.shape);
      c.expected = native->forward(x);
      write_floats(dir / (cid + ".in"), x);
      manifest += dir / (id + ".pt") + " " + dir / (cid + ".in") + " " + c.out + " " + c.meta;
      for (int64_t s : c.shape) manifest += " " + std::to_string(s);
      manifest += "\n";
      cases.push_back(c);
    }
  }
  write_bytes(dir / "manifest.txt", manifest);
  // One interpreter for all models: Python's startup costs more than the models.
  write_bytes(dir / "run.py", R"(import sys, numpy, torch
for line in open(sys.argv[1]):
    model, inp, out, meta, *shape = line.split()
    shape = [int(s) for s in shape]
    extra = {"bottleneck.json": ""}
    m = torch.jit.load(model, map_location="cpu", _extra_files=extra)
    assert not m.training
    m.eval()
    x = torch.from_numpy(numpy.fromfile(inp, dtype=numpy.float32).reshape(shape))
    with torch.no_grad():
        y = m(x)
        assert m.encode(x).dim() == 4
    y.contiguous().numpy().astype(numpy.float32).tofile(out)
    open(meta, "wb").write(extra["bottleneck.json"])
)");
  const auto result = bottleneck::test::run_command(std::string(bottleneck::test::kSystemPython) + " " +
                                                    dir / "run.py" + " " + dir / "manifest.txt");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  double worst = 0;
  for (const Case& c : cases) {
    const double d = max_diff(read_floats(c.out, c.expected.sizes().vec()), c.expected);
    EXPECT_LE(d, 1e-5) << c.out;
    worst = std::max(worst, d);
    const auto meta = nlohmann::json::parse(read_file(c.meta));
    EXPECT_EQ(meta.at("format"), kTorchScriptFormat);
    EXPECT_EQ(meta.at("format_version"), kTorchScriptVersion);
    EXPECT_EQ(meta.at("channels"), c.shape[1]);
    EXPECT_EQ(meta.at("noise"), "gaussian:25");
    EXPECT_EQ(meta.at("training").at("data"), "/data/train/gray400");
    EXPECT_EQ(meta.at("training").at("iterations"), 42);
    EXPECT_DOUBLE_EQ(meta.at("training").at("best_val_psnr").get<double>(), 31.25);
    EXPECT_EQ(arch_spec_from_json(meta.at("arch").dump()).in_channels, c.shape[1]);
  }
  std::cout << cases.size() << " Python runs, max abs diff " << worst << "\n";
}

// Conv-ae exports carry decode() too, and a dense code exports as linear layers: C++ and
// Python get N x K codes from encode() and decode(encode(x), h, w) equal to forward(x) and to
// the native network's output.
TEST(Exporter, DenseLatentAndDecodeWorkInCppAndPython) {
  TempDir dir;
  struct Case {
    ArchSpec spec;
    std::vector<int64_t> shape;
  };
  std::vector<Case> cases;
  for (int channels : {1, 3}) {
    ArchSpec dense = spec_of({"conv-ae", channels, "sigmoid", "transposed", 2, 1, "leaky_relu", true});
    dense.bottleneck_channels = 0;  // the dense layer reads the lowest level's 8 channels
    dense.latent = 6;
    dense.input_size = 13;  // padded to 16: a 4 x 4 x 8 map
    validate(dense);
    cases.push_back({dense, {2, channels, 13, 13}});
  }
  ArchSpec squeezed = spec_of({"conv-ae", 1, "linear", "bilinear", 3, 2, "silu", true});
  squeezed.latent = 3;
  squeezed.input_size = 16;
  validate(squeezed);
  cases.push_back({squeezed, {1, 1, 16, 16}});
  cases.push_back({spec_of({"conv-ae", 3, "sigmoid", "transposed", 2, 2, "relu", true}), {1, 3, 19, 8}});

  std::string manifest;
  std::vector<torch::Tensor> expected;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string id = std::to_string(i);
    Autoencoder native = export_random(cases[i].spec, dir / (id + ".ckpt"), dir / (id + ".pt"), 300 + i);
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::rand(cases[i].shape);
    expected.push_back(native->forward(x));
    torch::jit::Module loaded = torch::jit::load(dir / (id + ".pt"));
    const torch::Tensor code = loaded.get_method("encode")({x}).toTensor();
    EXPECT_LE(max_diff(code, native->encode(x)), 1e-5) << to_json(cases[i].spec);
    if (cases[i].spec.dense()) {
      EXPECT_EQ(code.sizes().vec(), (std::vector<int64_t>{x.size(0), cases[i].spec.latent}));
    }
    const torch::Tensor decoded = loaded.get_method("decode")({code, x.size(2), x.size(3)}).toTensor();
    EXPECT_LE(max_diff(decoded, expected.back()), 1e-5) << to_json(cases[i].spec);
    write_floats(dir / (id + ".in"), x);
    manifest += dir / (id + ".pt") + " " + dir / (id + ".in") + " " + dir / (id + ".out");
    for (int64_t d : cases[i].shape) manifest += " " + std::to_string(d);
    manifest += "\n";
  }
  if (!bottleneck::test::system_python_has("torch")) GTEST_SKIP() << "no torch in " << bottleneck::test::kSystemPython;
  write_bytes(dir / "manifest.txt", manifest);
  write_bytes(dir / "run.py", R"(import sys, numpy, torch
for line in open(sys.argv[1]):
    model, inp, out, *shape = line.split()
    shape = [int(s) for s in shape]
    m = torch.jit.load(model, map_location="cpu")
    x = torch.from_numpy(numpy.fromfile(inp, dtype=numpy.float32).reshape(shape))
    with torch.no_grad():
        code = m.encode(x)
        y = m.decode(code, shape[2], shape[3])
        assert torch.allclose(y, m(x), atol=1e-6)
    y.contiguous().numpy().astype(numpy.float32).tofile(out)
)");
  const auto result = bottleneck::test::run_command(std::string(bottleneck::test::kSystemPython) + " " +
                                                    dir / "run.py" + " " + dir / "manifest.txt");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  for (size_t i = 0; i < cases.size(); ++i)
    EXPECT_LE(max_diff(read_floats(dir / (std::to_string(i) + ".out"), expected[i].sizes().vec()), expected[i]), 1e-5)
        << to_json(cases[i].spec);
}

TEST(Exporter, LoadModelReadsExportsWithTheirMetadata) {
  TempDir dir;
  ArchSpec spec = spec_of({"unet", 3, "residual", "bilinear", 2, 2, "leaky_relu", true});
  Autoencoder native = export_random(spec, dir / "m.ckpt", dir / "m.pt", 7);
  const auto model = load_model(dir / "m.pt", torch::kCPU);
  const ModelInfo& info = model->info();
  EXPECT_EQ(info.file_kind, "torchscript");
  EXPECT_EQ(info.path, dir / "m.pt");
  EXPECT_EQ(to_json(info.arch), to_json(spec));
  EXPECT_EQ(info.noise, "gaussian:25");
  EXPECT_EQ(info.iteration, 42);
  EXPECT_DOUBLE_EQ(info.val_psnr, 31.25);
  EXPECT_EQ(info.train_data, "/data/train/gray400");
  EXPECT_EQ(info.format_version, kTorchScriptVersion);
  EXPECT_FALSE(info.project_version.empty());
  EXPECT_EQ(model->channels(), 3);
  EXPECT_EQ(model->receptive_radius(), receptive_radius(spec));
  EXPECT_FALSE(torch::jit::load(dir / "m.pt").is_training());
  // An export is a function of its checkpoint: another export of it, under another name, holds
  // the same bytes (the zip is not rooted at a temporary's name).
  ExportOptions again;
  again.checkpoint = dir / "m.ckpt";
  again.output = dir / "again.pt";
  export_model(again);
  auto bytes = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(bytes(dir / "again.pt"), bytes(dir / "m.pt"));
  EXPECT_EQ(bytes(dir / "m.pt").find(".tmp-"), std::string::npos);

  const auto from_checkpoint = load_model(dir / "m.ckpt", torch::kCPU);
  EXPECT_EQ(from_checkpoint->info().file_kind, "checkpoint");
  EXPECT_EQ(to_json(from_checkpoint->info().arch), to_json(spec));

  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::rand({2, 3, 37, 53});
  EXPECT_LE(max_diff(model->forward(x), native->forward(x)), 1e-5);
  EXPECT_LE(max_diff(model->forward(x), from_checkpoint->forward(x)), 1e-5);
  try {
    model->forward(torch::rand({1, 1, 8, 8}));
    ADD_FAILURE() << "no error for a 1-channel input";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("N x 3 x H x W"), std::string::npos) << e.what();
  }
}

TEST(Exporter, MetadataWithoutValidationIsNull) {
  CheckpointInfo info = info_for(spec_of({"unet", 1, "residual", "transposed", 1, 1, "relu", false}));
  info.best_val_psnr = std::nan("");
  info.config_json = "";
  const std::string json = export_metadata_json(info);
  EXPECT_TRUE(nlohmann::json::parse(json).at("training").at("best_val_psnr").is_null()) << json;
  const ModelInfo parsed = parse_export_metadata("x.pt", json);
  EXPECT_TRUE(std::isnan(parsed.val_psnr));
  EXPECT_EQ(parsed.train_data, "");
}

TEST(Exporter, BadFilesGiveOneLineErrors) {
  TempDir dir;
  const ArchSpec spec = spec_of({"unet", 1, "residual", "transposed", 2, 1, "relu", false});
  Autoencoder native = export_random(spec, dir / "m.ckpt", dir / "m.pt", 3);
  const std::string bytes = read_file(dir / "m.pt");

  write_bytes(dir / "truncated.pt", bytes.substr(0, bytes.size() / 2));
  EXPECT_NE(expect_load_error(dir / "truncated.pt").find("corrupt or truncated"), std::string::npos);
  write_bytes(dir / "tail-cut.pt", bytes.substr(0, bytes.size() - 10));
  EXPECT_NE(expect_load_error(dir / "tail-cut.pt").find("corrupt or truncated"), std::string::npos);

  std::mt19937 rng(5);
  std::string noise(4096, '\0');
  for (char& ch : noise) ch = static_cast<char>(rng());
  write_bytes(dir / "random.pt", noise);
  EXPECT_NE(expect_load_error(dir / "random.pt").find("corrupt or truncated"), std::string::npos);
  write_bytes(dir / "empty.pt", "");
  expect_load_error(dir / "empty.pt");
  EXPECT_NE(expect_load_error(dir / "missing.pt").find("no such file"), std::string::npos);
  EXPECT_NE(expect_load_error(dir.path()).find("directory"), std::string::npos);

  // A valid TorchScript archive that is not ours.
  torch::jit::Module foreign("__torch__.Foreign");
  foreign.register_parameter("w", torch::ones({1}), false);
  foreign.define("def forward(self, x: Tensor) -> Tensor:\n    return x * self.w\n");
  foreign.save(dir / "foreign.pt");
  EXPECT_NE(expect_load_error(dir / "foreign.pt").find("not a Bottleneck model"), std::string::npos);

  // Ours, but from a future version, or with damaged metadata.
  const torch::jit::Module module = to_torchscript(*native, torch::kCPU);
  auto meta = nlohmann::json::parse(export_metadata_json(info_for(spec)));
  meta["format_version"] = 999;
  module.save(dir / "future.pt", {{kTorchScriptMetadataFile, meta.dump()}});
  const std::string future = expect_load_error(dir / "future.pt");
  EXPECT_NE(future.find("999"), std::string::npos) << future;
  EXPECT_NE(future.find("upgrade"), std::string::npos) << future;
  module.save(dir / "garbled.pt", {{kTorchScriptMetadataFile, "{\"format\": "}});
  EXPECT_NE(expect_load_error(dir / "garbled.pt").find("damaged export metadata"), std::string::npos);
  meta["format_version"] = 1;
  meta["format"] = "something-else";
  module.save(dir / "other.pt", {{kTorchScriptMetadataFile, meta.dump()}});
  EXPECT_NE(expect_load_error(dir / "other.pt").find("not a Bottleneck export"), std::string::npos);
  meta["format"] = kTorchScriptFormat;
  meta["arch"]["widths"] = {4, -1};
  module.save(dir / "badarch.pt", {{kTorchScriptMetadataFile, meta.dump()}});
  EXPECT_NE(expect_load_error(dir / "badarch.pt").find("widths"), std::string::npos);

  // Exporting something that is not a checkpoint.
  ExportOptions options;
  options.checkpoint = dir / "m.pt";
  options.output = dir / "again.pt";
  try {
    export_model(options);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already an exported model"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "again.pt"));
}

namespace {
// A network whose parameters the generated source cannot account for.
class WrappedImpl : public AutoencoderImpl {
 public:
  explicit WrappedImpl(const ArchSpec& spec) : AutoencoderImpl(spec), inner_(make_model(spec)) {
    register_module("inner", inner_);
  }
  torch::Tensor forward(torch::Tensor x) override { return inner_->forward(x); }
  torch::Tensor encode(torch::Tensor x) override { return inner_->encode(x); }

 private:
  Autoencoder inner_;
};
}  // namespace

TEST(Exporter, RefusesANetworkItsSourceDoesNotDescribe) {
  const ArchSpec spec = spec_of({"unet", 1, "residual", "transposed", 1, 1, "relu", false});
  WrappedImpl wrapped(spec);
  try {
    to_torchscript(wrapped, torch::kCPU);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("disagree"), std::string::npos) << e.what();
  }
}

TEST(Exporter, CudaExportMatches) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  TempDir dir;
  const ArchSpec spec = spec_of({"unet", 3, "residual", "bilinear", 3, 2, "silu", true});
  torch::manual_seed(11);
  Autoencoder native = make_model(spec);
  save_checkpoint(dir / "m.ckpt", *native, nullptr, info_for(spec));
  ExportOptions options;
  options.checkpoint = dir / "m.ckpt";
  options.output = dir / "m.pt";
  options.device = torch::Device(torch::kCUDA);
  export_model(options);
  torch::jit::Module loaded = torch::jit::load(dir / "m.pt");
  for (const auto& p : loaded.parameters()) EXPECT_TRUE(p.is_cuda());
  const auto model = load_model(dir / "m.pt", torch::kCPU);  // CUDA weights map onto the CPU
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::rand({1, 3, 37, 53});
  EXPECT_LE(max_diff(model->forward(x), native->forward(x)), 1e-5);
  // On the GPU, TF32 convolutions may round differently from the CPU.
  const double gpu = max_diff(loaded.forward({x.cuda()}).toTensor(), native->forward(x));
  std::cout << "CUDA export: GPU vs CPU max abs diff " << gpu << "\n";
  EXPECT_LE(gpu, 1e-2);
}

TEST(ExporterCli, ExportThenInfoOnBothKinds) {
  TempDir dir;
  const ArchSpec spec = spec_of({"conv-ae", 1, "sigmoid", "transposed", 2, 2, "relu", true});
  torch::manual_seed(2);
  Autoencoder native = make_model(spec);
  save_checkpoint(dir / "m.ckpt", *native, nullptr, info_for(spec));

  const auto exported = bottleneck::test::run_cli("export --checkpoint " + dir / "m.ckpt" + " --output " + dir / "m.pt");
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_NE(exported.output.find("torch.jit.load"), std::string::npos) << exported.output;
  EXPECT_NE(exported.output.find(" cpu"), std::string::npos) << exported.output;

  const auto info = bottleneck::test::run_cli("info " + dir / "m.pt");
  ASSERT_EQ(info.exit_code, 0) << info.output;
  for (const char* expected : {"exported TorchScript model (bottleneck-torchscript v1)", "\"kind\":\"conv-ae\"",
                               "parameters:       " , "MACs per pixel:", "gaussian:25", "iterations:       42",
                               "31.25 dB", "/data/train/gray400", "written by:       bottleneck "})
    EXPECT_NE(info.output.find(expected), std::string::npos) << expected << " in\n" << info.output;
  EXPECT_NE(info.output.find("parameters:       " + std::to_string(parameter_count(*native))), std::string::npos)
      << info.output;

  const auto ckpt_info = bottleneck::test::run_cli("info " + dir / "m.ckpt");
  ASSERT_EQ(ckpt_info.exit_code, 0) << ckpt_info.output;
  EXPECT_NE(ckpt_info.output.find("training checkpoint (bottleneck-checkpoint v1)"), std::string::npos)
      << ckpt_info.output;
  EXPECT_NE(ckpt_info.output.find("iterations:       42"), std::string::npos) << ckpt_info.output;
}

TEST(ExporterCli, FailuresExitWithOneLine) {
  TempDir dir;
  auto one_line = [](const bottleneck::test::CommandResult& r) {
    std::string out = r.output;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return !out.empty() && out.find('\n') == std::string::npos;
  };
  const auto missing = bottleneck::test::run_cli("export --checkpoint " + dir / "nope.ckpt" + " --output " + dir / "m.pt");
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_TRUE(one_line(missing)) << missing.output;
  EXPECT_NE(missing.output.find("nope.ckpt"), std::string::npos) << missing.output;
  EXPECT_FALSE(fs::exists(dir / "m.pt"));

  write_bytes(dir / "junk.pt", std::string(1000, 'x'));
  const auto junk = bottleneck::test::run_cli("info " + dir / "junk.pt");
  EXPECT_EQ(junk.exit_code, 1) << junk.output;
  EXPECT_TRUE(one_line(junk)) << junk.output;

  const auto usage = bottleneck::test::run_cli("export --output " + dir / "m.pt");
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
  const auto no_file = bottleneck::test::run_cli("info");
  EXPECT_EQ(no_file.exit_code, 2) << no_file.output;
}

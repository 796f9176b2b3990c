// The codec network and its training: shapes and padding for any size, gains, symbols coded
// exactly through the frozen tables, rate-distortion training that learns, bit-exact resume.
#include <atomic>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "codec/codec_model.h"
#include "codec/codec_trainer.h"
#include "codec/rans.h"
#include "util/log.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using bottleneck::test::TempDir;

namespace {

CodecModel tiny_model(int channels = 3, const std::string& activation = "relu", int rates = 3,
                      const std::string& prior = "step") {
  torch::manual_seed(3);
  CodecSpec spec;
  spec.prior = prior;
  spec.channels = channels;
  spec.n = 8;
  spec.m = 6;
  spec.activation = activation;
  spec.rates = rates;
  std::vector<double> lambdas;
  for (int r = 0; r < rates; ++r) lambdas.push_back(0.004 * (r + 1));
  return CodecModel(spec, lambdas);
}

// A codec checkpoint's weights in a model built from its own spec.
CodecModel load_checkpoint_model(const std::string& path) {
  CodecModel m(read_codec_checkpoint_info(path).spec);
  load_codec_checkpoint_state(path, *m, nullptr);
  return m;
}

void expect_same_parameters(CodecModelImpl& a, CodecModelImpl& b) {
  const auto pb = b.named_parameters();
  for (const auto& p : a.named_parameters()) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
}

TrainOptions tiny_run(const TempDir& dir, const std::string& out) {
  TrainOptions o;
  o.task = "compress";
  o.data_dir = dir / "train";
  o.val_dir = dir / "val";
  o.out_dir = dir / out;
  o.arch.in_channels = o.arch.out_channels = 3;
  o.patches.patch = 32;
  o.patches.batch = 4;
  o.iterations = 24;
  o.lr = 5e-3;
  o.lr_min = 1e-4;
  o.lambdas = {0.01, 0.05};
  o.codec_n = 8;
  o.codec_m = 8;
  o.val_every = 12;
  o.checkpoint_every = 6;
  o.log_every = 4;
  o.seed = 11;
  return o;
}

// tiny_run without validation, for `iterations` steps: runs whose checkpoints are what a test reads.
TrainOptions unvalidated_run(const TempDir& dir, const std::string& out, int64_t iterations) {
  TrainOptions o = tiny_run(dir, out);
  o.val_dir.clear();
  o.iterations = iterations;
  return o;
}

// The first column's values of metrics.csv named `column`, non-empty ones.
std::vector<double> column(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  std::vector<std::string> header;
  {
    std::stringstream ss(line);
    std::string c;
    while (std::getline(ss, c, ',')) header.push_back(c);
  }
  const size_t k = std::find(header.begin(), header.end(), name) - header.begin();
  std::vector<double> values;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string c;
    while (std::getline(ss, c, ',')) cells.push_back(c);
    if (k < cells.size() && !cells[k].empty()) values.push_back(std::stod(cells[k]));
  }
  return values;
}

}  // namespace

TEST(CodecModel, OddSizesArePaddedToTheStrideAndCroppedBack) {
  for (int channels : {1, 3}) {
    auto model = tiny_model(channels);
    model->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::rand({2, channels, 37, 45});
    EXPECT_EQ(CodecModelImpl::pad_to_stride(x).sizes(), torch::IntArrayRef({2, channels, 48, 48}));
    const torch::Tensor rates = torch::tensor({0, 2}, torch::kLong);
    const CodecOutput out = model->forward(x, model->gains(rates), model->inverse_gains(rates));
    EXPECT_EQ(out.x_hat.sizes(), x.sizes());
    EXPECT_EQ(out.likelihoods.sizes(), torch::IntArrayRef({2, 6, 3, 3}));
    EXPECT_EQ(out.y_hat.sizes(), torch::IntArrayRef({2, 6, 3, 3}));
    // A multiple of the stride is not padded.
    EXPECT_EQ(CodecModelImpl::pad_to_stride(torch::rand({1, channels, 32, 16})).sizes(),
              torch::IntArrayRef({1, channels, 32, 16}));
  }
}

TEST(CodecModel, GdnModelHasTheSameShapesAndNamedParameters) {
  auto model = tiny_model(3, "gdn");
  const auto params = model->named_parameters();
  for (const char* name : {"g_a.0.weight", "g_a.1.beta", "g_a.1.gamma", "g_s.5.gamma", "g_s.6.bias", "gain",
                           "inverse_gain", "prior.matrix0", "prior.factor3", "prior.bias4"})
    EXPECT_NE(params.find(name), nullptr) << name;
  EXPECT_NE(model->named_buffers().find("prior.medians"), nullptr);
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::rand({1, 3, 20, 33});
  const CodecOutput out = model->forward(x, model->gains_at(1.0), model->inverse_gains_at(1.0));
  EXPECT_EQ(out.x_hat.sizes(), x.sizes());
}

TEST(CodecModel, GainsInterpolateGeometricallyBetweenTrainedRates) {
  auto model = tiny_model();
  torch::NoGradGuard no_grad;
  const torch::Tensor g1 = model->gains(torch::tensor({1}, torch::kLong));
  EXPECT_TRUE(torch::allclose(model->gains_at(1.0), g1));
  EXPECT_TRUE(torch::allclose(model->gains_at(2.0), model->gains(torch::tensor({2}, torch::kLong))));
  const torch::Tensor mid = model->gains_at(0.5), g0 = model->gains(torch::tensor({0}, torch::kLong));
  EXPECT_TRUE(torch::allclose(mid, torch::sqrt(g0 * g1)));
  // Initialised in proportion to sqrt(lambda): more bits at higher rates.
  EXPECT_GT(g1.mean().item<double>(), g0.mean().item<double>());
  EXPECT_THROW(model->gains_at(2.5), Error);
}

// Both kinds of prior: a "step" one codes rate 1 with the tables frozen for rate 1's step, a
// "gained" one with its single set.
TEST(CodecModel, QuantisedLatentsRoundTripThroughFrozenTablesExactly) {
  for (const std::string prior : {"step", "gained"}) {
    SCOPED_TRACE(prior);
    auto model = tiny_model(3, "relu", 3, prior);
    model->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor rates = torch::tensor({1}, torch::kLong);
    const torch::Tensor gain = model->gains(rates), prior_gain = model->prior_gain(gain);
    EXPECT_EQ(prior_gain.defined(), prior == "step");
    const FrozenPrior frozen = freeze_prior(*model->prior, 1e-9, prior_gain.defined() ? prior_gain.flatten(1) : torch::Tensor());
    ASSERT_EQ(frozen.steps(), 1u);
    const torch::Tensor x = test::synthetic_image(3, 41, 29, 5).unsqueeze(0);
    const CodecOutput out = model->forward(x, gain, model->inverse_gains(rates));
    const torch::Tensor symbols = model->prior->symbols(out.y_hat, prior_gain).contiguous();
    const int32_t* s = symbols.data_ptr<int32_t>();
    const int64_t channels = symbols.size(1), plane = symbols.size(2) * symbols.size(3);
    RansEncoder enc;
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t k = 0; k < plane; ++k) enc.put(s[c * plane + k], frozen.table(0, c));
    const std::vector<uint8_t> bytes = enc.finish();
    RansDecoder dec(bytes.data(), bytes.size());
    torch::Tensor decoded = torch::empty_like(symbols);
    int32_t* d = decoded.data_ptr<int32_t>();
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t k = 0; k < plane; ++k) d[c * plane + k] = dec.get(frozen.table(0, c));
    dec.finish_check();
    ASSERT_TRUE(torch::equal(decoded, symbols));
    // The decoded symbols give the model's quantised reconstruction exactly.
    const torch::Tensor y = model->prior->dequantize(decoded, prior_gain);
    EXPECT_TRUE(torch::equal(y, out.y_hat));
    const torch::Tensor x_hat = model->synthesis(y * model->inverse_gains(rates)).slice(2, 0, 41).slice(3, 0, 29);
    EXPECT_TRUE(torch::equal(x_hat, out.x_hat));
  }
}

// The step prior's point: the likelihood of v = y * gain is the prior's mass over the bin
// [v - 1/2, v + 1/2] / gain, so halving the step (gain 2) splits each unit bin's mass between
// two symbols, and the estimated bits of the same latents grow by about one per value.
TEST(CodecModel, StepPriorBinsAreTheLatentIntervalsOfTheirStep) {
  auto model = tiny_model(3, "relu", 3, "step");
  torch::NoGradGuard no_grad;
  const torch::Tensor y = torch::linspace(-3, 3, 6 * 50).view({1, 6, 10, 5});
  const torch::Tensor one = torch::ones({1, 6, 1, 1}), two = torch::full({1, 6, 1, 1}, 2.0);
  // Symbol k at gain 2 is the bin [k - 1/2, k + 1/2] / 2 of y; the two halves of a unit bin add up.
  const torch::Tensor k = torch::round(y);
  const torch::Tensor unit = model->prior->likelihood(k, one);
  const torch::Tensor halves =
      model->prior->likelihood(2 * k - 0.5, two) + model->prior->likelihood(2 * k + 0.5, two);
  EXPECT_TRUE(torch::allclose(unit, halves, 1e-4, 1e-6));
  // Without a gain, the old reading: the same as gain 1.
  EXPECT_TRUE(torch::allclose(model->prior->likelihood(k), unit));
  // Finer steps cost more bits for the same latents.
  const double bits1 = -torch::log2(model->prior->likelihood(model->prior->quantize(y, one), one)).sum().item<double>();
  const double bits2 = -torch::log2(model->prior->likelihood(model->prior->quantize(2 * y, two), two)).sum().item<double>();
  EXPECT_GT(bits2, bits1 + 0.5 * static_cast<double>(y.numel()));
  // Symbols and values: quantize = dequantize(symbols) at any gain.
  const torch::Tensor g = torch::rand({1, 6, 1, 1}) * 3 + 0.2;
  EXPECT_TRUE(torch::allclose(model->prior->dequantize(model->prior->symbols(y * g, g), g), model->prior->quantize(y * g, g)));
}

TEST(CodecTrainer, AFewStepsReduceTheRateDistortionLoss) {
  torch::set_num_threads(1);
  TempDir dir;
  test::write_synthetic_images(dir / "train", 6, 3, 64, 72, 100);
  test::write_synthetic_images(dir / "val", 2, 3, 40, 56, 900);
  TrainOptions o = tiny_run(dir, "run");
  o.iterations = 60;
  o.val_every = 30;
  Runtime runtime;
  const CodecTrainResult r = train_codec(o, TrainControl{}, runtime, Logger(LogLevel::kQuiet));
  EXPECT_TRUE(r.finished);
  const auto loss = column(dir / "run/metrics.csv", "loss");
  ASSERT_GE(loss.size(), 10u);
  EXPECT_LT(loss.back(), 0.8 * loss.front());
  const auto rd = column(dir / "run/metrics.csv", "val_rd");
  ASSERT_EQ(rd.size(), 2u);
  EXPECT_LT(rd[1], rd[0]);
  ASSERT_EQ(r.last.rates.size(), 2u);
  // Real bits (rANS payload + container) are close to the estimate: small images pay the
  // container's 68 bytes and the tables' one-count floor.
  for (const auto& rate : r.last.rates) {
    EXPECT_GT(rate.real_bpp, rate.bpp);
    EXPECT_LT(rate.real_bpp, rate.bpp + 8 * 68.0 / (40 * 56) + 0.1);
  }
  EXPECT_TRUE(fs::exists(dir / "run/best.ckpt"));
  EXPECT_TRUE(fs::exists(dir / "run/curves.png"));
}

TEST(CodecTrainer, StoppedAndResumedRunEqualsUninterruptedRunBitExactly) {
  torch::set_num_threads(1);
  TempDir dir;
  test::write_synthetic_images(dir / "train", 6, 3, 64, 72, 100);
  test::write_synthetic_images(dir / "val", 2, 3, 40, 56, 900);
  Runtime runtime;
  const Logger quiet(LogLevel::kQuiet);
  train_codec(tiny_run(dir, "whole"), TrainControl{}, runtime, quiet);
  TrainControl first;
  first.stop_after = 9;  // not at a checkpoint or log step
  const CodecTrainResult stopped = train_codec(tiny_run(dir, "split"), first, runtime, quiet);
  EXPECT_EQ(stopped.iteration, 9);
  EXPECT_FALSE(stopped.finished);
  TrainControl again;
  again.resume = true;
  EXPECT_TRUE(train_codec(tiny_run(dir, "split"), again, runtime, quiet).finished);

  expect_same_parameters(*load_checkpoint_model(dir / "whole/last.ckpt"), *load_checkpoint_model(dir / "split/last.ckpt"));
  EXPECT_EQ(column(dir / "whole/metrics.csv", "loss"), column(dir / "split/metrics.csv", "loss"));
  EXPECT_EQ(column(dir / "whole/metrics.csv", "val_rd"), column(dir / "split/metrics.csv", "val_rd"));
  EXPECT_THROW(train_codec(tiny_run(dir, "whole"), TrainControl{}, runtime, quiet), UsageError);
}

TEST(CodecTrainer, StopFlagWritesLastCheckpointAndResumeFinishes) {
  torch::set_num_threads(1);
  TempDir dir;
  test::write_synthetic_images(dir / "train", 4, 3, 64, 64, 100);
  Runtime runtime;
  const Logger quiet(LogLevel::kQuiet);
  TrainOptions o = unvalidated_run(dir, "run", 10);
  std::atomic<bool> stop{false};
  TrainControl control;
  control.stop = &stop;
  // The CLI's SIGINT/SIGTERM handler raises this flag; here it is raised before the first step.
  stop.store(true);
  const CodecTrainResult r = train_codec(o, control, runtime, quiet);
  EXPECT_EQ(r.iteration, 0);
  EXPECT_FALSE(r.finished);
  EXPECT_EQ(read_codec_checkpoint_info(dir / "run/last.ckpt").iteration, 0);
  TrainControl again;
  again.resume = true;
  EXPECT_TRUE(train_codec(o, again, runtime, quiet).finished);
  EXPECT_EQ(read_codec_checkpoint_info(dir / "run/last.ckpt").iteration, 10);
}

// Stage 2 of the shipped codec: a "step" run started (--init) from a "gained" run's weights;
// the weights arrive unchanged, and another network's checkpoint is refused.
TEST(CodecTrainer, InitStartsAStepPriorRunFromAGainedRunsWeights) {
  torch::set_num_threads(1);
  TempDir dir;
  test::write_synthetic_images(dir / "train", 4, 3, 64, 64, 100);
  Runtime runtime;
  const Logger quiet(LogLevel::kQuiet);
  TrainOptions first = unvalidated_run(dir, "gained", 6);
  first.codec_prior = "gained";
  ASSERT_TRUE(train_codec(first, TrainControl{}, runtime, quiet).finished);
  const std::string ckpt = dir / "gained/last.ckpt";
  const CodecCheckpointInfo info = read_codec_checkpoint_info(ckpt);
  EXPECT_EQ(info.spec.prior, "gained");
  CodecModel before = load_checkpoint_model(ckpt);
  CodecSpec step_spec = info.spec;
  step_spec.prior = "step";
  CodecModel started(step_spec);
  init_codec_from_checkpoint(ckpt, *started, info.lambdas);
  expect_same_parameters(*started, *before);
  CodecSpec wider = step_spec;
  wider.n = 16;
  CodecModel other(wider);
  EXPECT_THROW(init_codec_from_checkpoint(ckpt, *other, info.lambdas), Error);
  // Through the trainer: a step run with --init trains from there.
  TrainOptions second = unvalidated_run(dir, "step", 4);
  second.init = ckpt;
  ASSERT_TRUE(train_codec(second, TrainControl{}, runtime, quiet).finished);
  EXPECT_EQ(read_codec_checkpoint_info(dir / "step/last.ckpt").spec.prior, "step");
}

// A run with a longer rate ladder starts from a shorter one's weights: the rates both have keep
// their gains, a new rate inside the ladder gets the geometric interpolation of its neighbours'
// gains in log lambda, one beyond it the continuation of the end segment; the rest is as stored.
TEST(CodecTrainer, InitOntoAnotherRateLadderMapsTheGainsInLogLambda) {
  torch::set_num_threads(1);
  TempDir dir;
  test::write_synthetic_images(dir / "train", 4, 3, 64, 64, 100);
  Runtime runtime;
  const Logger quiet(LogLevel::kQuiet);
  TrainOptions first = unvalidated_run(dir, "two", 6);  // lambdas 0.01, 0.05
  ASSERT_TRUE(train_codec(first, TrainControl{}, runtime, quiet).finished);
  const std::string ckpt = dir / "two/last.ckpt";
  CodecModel before = load_checkpoint_model(ckpt);
  const std::vector<double> ladder = {0.0025, 0.01, std::sqrt(0.01 * 0.05), 0.05, 0.25};
  CodecSpec spec = before->spec();
  spec.rates = static_cast<int>(ladder.size());
  CodecModel started(spec);
  init_codec_from_checkpoint(ckpt, *started, ladder);
  auto p = started->named_parameters(), q = before->named_parameters();
  for (const auto& name : {"gain", "inverse_gain"}) {
    const torch::Tensor lo = q[name][0].abs(), hi = q[name][1].abs(), got = p[name];
    EXPECT_TRUE(torch::allclose(got[1], lo, 1e-6, 0)) << name;
    EXPECT_TRUE(torch::allclose(got[3], hi, 1e-6, 0)) << name;
    EXPECT_TRUE(torch::allclose(got[2], (lo * hi).sqrt(), 1e-5, 0)) << name;
    // 0.0025 is log(4) / log(5) of a segment below 0.01; 0.25 one whole segment above 0.05.
    const double t = std::log(4.0) / std::log(5.0);
    EXPECT_TRUE(torch::allclose(got[0], lo * (lo / hi).pow(t), 1e-5, 0)) << name;
    EXPECT_TRUE(torch::allclose(got[4], hi * hi / lo, 1e-5, 0)) << name;
  }
  for (const auto& x : p) {
    if (x.key() == "gain" || x.key() == "inverse_gain") continue;
    EXPECT_TRUE(torch::equal(x.value(), q[x.key()])) << x.key();
  }
  // Through the trainer: a five-rate run trains from there.
  TrainOptions second = unvalidated_run(dir, "five", 4);
  second.init = ckpt;
  second.lambdas = ladder;
  ASSERT_TRUE(train_codec(second, TrainControl{}, runtime, quiet).finished);
  EXPECT_EQ(read_codec_checkpoint_info(dir / "five/last.ckpt").spec.rates, 5);
}

TEST(CodecTrainer, CliTrainsAndResumesACompressRun) {
  TempDir dir;
  test::write_synthetic_images(dir / "train", 4, 3, 64, 64, 100);
  test::write_synthetic_images(dir / "val", 1, 3, 48, 48, 900);
  const std::string flags = "train --task compress --channels 3 --codec-n 8 --codec-m 8 --lambdas 0.01,0.04 "
                            "--patch 32 --batch 2 --iters 12 --val-every 6 --checkpoint-every 4 --threads 1 --data " +
                            dir / "train" + " --val " + dir / "val" + " --out " + dir / "run";
  auto r = test::run_cli(flags + " --stop-after 5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("continue with"), std::string::npos) << r.output;
  r = test::run_cli("train --threads 1 --resume " + dir / "run");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("finished"), std::string::npos) << r.output;
  EXPECT_EQ(read_codec_checkpoint_info(dir / "run/last.ckpt").iteration, 12);
  r = test::run_cli("train --task compress --lambdas 0.01,x --data " + dir / "train" + " --out " + dir / "bad");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

TEST(CodecTrainConfig, OldConfigsLoadAsDenoiseAndCodecFieldsRoundTrip) {
  // A config written before the codec existed (no task, lambdas, codec_* keys).
  const TrainOptions old = train_options_from_json(R"({"data": "d", "out": "o", "patch": 48})", TrainOptions(), "old");
  EXPECT_EQ(old.task, "denoise");
  EXPECT_EQ(old.lambdas, TrainOptions().lambdas);  // codec runs always wrote theirs
  TrainOptions o;
  o.data_dir = "d";
  o.out_dir = "o";
  o.task = "compress";
  o.lambdas = {0.01, 0.02};
  o.codec_n = 32;
  o.codec_m = 40;
  o.codec_activation = "gdn";
  o.patches.patch = 64;
  validate(o);
  const TrainOptions back = train_options_from_json(to_json(o), TrainOptions(), "test");
  EXPECT_EQ(back.task, "compress");
  EXPECT_EQ(back.lambdas, o.lambdas);
  EXPECT_EQ(back.codec_m, 40);
  EXPECT_EQ(back.codec_activation, "gdn");
  EXPECT_EQ(back.codec_prior, "step");
  o.codec_prior = "gained";
  EXPECT_EQ(train_options_from_json(to_json(o), TrainOptions(), "test").codec_prior, "gained");
  // A codec run's config from before "codec_prior" existed was a run of the "gained" prior.
  nlohmann::json before = nlohmann::json::parse(to_json(o));
  before.erase("codec_prior");
  EXPECT_EQ(train_options_from_json(before.dump(), TrainOptions(), "before").codec_prior, "gained");
  o.codec_prior = "step";
  TrainOptions bad = o;
  bad.patches.patch = 40;
  EXPECT_THROW(validate(bad), UsageError);
  bad = o;
  bad.lambdas = {0.01, -1};
  EXPECT_THROW(validate(bad), UsageError);
  bad = o;
  bad.codec_activation = "tanh";
  EXPECT_THROW(validate(bad), UsageError);
  bad = o;
  bad.codec_prior = "hyper";
  EXPECT_THROW(validate(bad), UsageError);
}

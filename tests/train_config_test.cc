#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>

#include <gtest/gtest.h>

#include "util/error.h"
#include "train/train_config.h"

using namespace bottleneck;

namespace {
TrainOptions valid_options() {
  TrainOptions o;
  o.data_dir = "data";
  o.out_dir = "run";
  return o;
}
}  // namespace

TEST(TrainConfig, JsonRoundTripKeepsEveryField) {
  TrainOptions o = valid_options();
  o.pairs_dir = "noisy";
  o.val_dir = "val";
  o.noise = "gaussian:0-55";
  o.val_noise = "gaussian:25";
  o.patches.patch = 96;
  o.patches.batch = 8;
  o.iterations = 1234;
  o.lr = 2e-4;
  o.lr_min = 1e-6;
  o.schedule = "step";
  o.step_size = 100;
  o.step_gamma = 0.25;
  o.loss = "l1";
  o.precision = "bf16";
  o.patches.augment = false;
  o.val_every = 7;
  o.checkpoint_every = 9;
  o.log_every = 3;
  o.samples = 1;
  o.val_max_images = 4;
  o.loader_workers = 2;
  o.seed = 99;
  o.arch.widths = {8, 16};
  const TrainOptions back = train_options_from_json(to_json(o), TrainOptions(), "test");
  EXPECT_EQ(to_json(back), to_json(o));
  EXPECT_EQ(back.seed, 99u);
  EXPECT_EQ(back.schedule, "step");
  EXPECT_EQ(back.precision, "bf16");
  EXPECT_EQ(back.arch.widths, (std::vector<int>{8, 16}));
}

TEST(TrainConfig, PartialConfigKeepsBase) {
  TrainOptions base = valid_options();
  base.patches.batch = 4;
  const TrainOptions o = train_options_from_json(R"({"iters": 10, "lr": 0.01})", base, "cfg.json");
  EXPECT_EQ(o.iterations, 10);
  EXPECT_DOUBLE_EQ(o.lr, 0.01);
  EXPECT_EQ(o.patches.batch, 4);
  EXPECT_EQ(o.data_dir, "data");
  EXPECT_EQ(o.precision, "fp32");  // configs of runs from before --precision resume in fp32
}

TEST(TrainConfig, RejectsUnknownKeysWrongTypesAndBadJson) {
  try {
    train_options_from_json(R"({"itres": 10})", valid_options(), "cfg.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.json: unknown option \"itres\""), std::string::npos) << e.what();
  }
  EXPECT_THROW(train_options_from_json(R"({"iters": "many"})", valid_options(), "c"), Error);
  EXPECT_THROW(train_options_from_json("{nope", valid_options(), "c"), Error);
  EXPECT_THROW(train_options_from_json("[1,2]", valid_options(), "c"), Error);
}

TEST(TrainConfig, ValidateNamesTheBadField) {
  auto expect_bad = [](TrainOptions o, const std::string& needle) {
    try {
      validate(o);
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  EXPECT_NO_THROW(validate(valid_options()));
  TrainOptions o = valid_options();
  o.data_dir.clear();
  expect_bad(o, "--data");
  o = valid_options();
  o.patches.patch = 50;  // not a multiple of 4 for the default depth-2 unet
  expect_bad(o, "--patch");
  o = valid_options();
  o.lr_min = 1;
  expect_bad(o, "--lr-min");
  o = valid_options();
  o.schedule = "linear";
  expect_bad(o, "--schedule");
  o = valid_options();
  o.loss = "huber";
  expect_bad(o, "--loss");
  o = valid_options();
  o.precision = "fp16";
  expect_bad(o, "--precision");
  o = valid_options();
  o.noise = "gauss:3";
  EXPECT_THROW(validate(o), UsageError);
  o = valid_options();
  o.standardize = true;  // a denoiser must see the image's own levels
  expect_bad(o, "--standardize");
  o.task = "reconstruct";
  o.arch.head = Head::kSigmoid;
  EXPECT_NO_THROW(validate(o));
}

namespace {
// The message of the UsageError that `f` throws ("" and a test failure when it throws none).
template <typename F>
std::string usage_message(F&& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a usage error: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return "";
}
std::string config_message(const std::string& json) {
  return usage_message([&] { train_options_from_json(json, valid_options(), "cfg.json"); });
}
}  // namespace

// Values no run can use are refused by validate(), before anything touches disk: --lr 1e300
// used to pass and fail only once the run directory existed.
TEST(TrainConfig, ValidateRefusesAbsurdAndNonFiniteValuesNamingTheFlag) {
  struct Case {
    void (*set)(TrainOptions&);
    const char* needle;
  };
  const Case cases[] = {
      {[](TrainOptions& o) { o.lr = 1e300; }, "--lr must be > 0 and at most 1, got 1e+300"},
      {[](TrainOptions& o) { o.lr = std::nan(""); }, "--lr must be > 0"},
      {[](TrainOptions& o) { o.lr = 0; }, "--lr must be > 0"},
      {[](TrainOptions& o) { o.epochs = std::numeric_limits<double>::infinity(); }, "--epochs must be from 0 to"},
      {[](TrainOptions& o) { o.epochs = -1; }, "--epochs must be from 0 to"},
      {[](TrainOptions& o) { o.iterations = 0; }, "--iters must be from 1 to 1000000000, got 0"},
      {[](TrainOptions& o) { o.iterations = int64_t{1} << 40; }, "--iters must be from 1 to 1000000000"},
      {[](TrainOptions& o) { o.patches.patch = 1 << 20; }, "--patch must be from 8 to 4096, got 1048576"},
      {[](TrainOptions& o) { o.step_gamma = 1e9; }, "--step-gamma must be > 0 and at most 1"},
      {[](TrainOptions& o) { o.step_size = 0; }, "--step-size must be from 1"},
      {[](TrainOptions& o) { o.val_every = -5; }, "--val-every must be from 1"},
      {[](TrainOptions& o) { o.loader_workers = 100000; }, "--workers must be from 1 to 256, got 100000"},
      {[](TrainOptions& o) { o.max_pixels = 0; }, "--max-pixels must be from 1"},
      {[](TrainOptions& o) { o.samples = -1; }, "--samples must be from 0"},
      {[](TrainOptions& o) { o.lr_min = 2; }, "--lr-min must be from 0 to 1, got 2"},
      {[](TrainOptions& o) { o.lr_min = 0.01; }, "--lr-min 0.01 is above --lr 0.001"},
      {[](TrainOptions& o) { o.lambdas = {0.01, std::nan("")}; }, "--lambdas must each be > 0"},
      {[](TrainOptions& o) { o.lambdas = {0.01, 0.05, 0.02}; }, "--lambdas must be in increasing order"},
  };
  for (const Case& c : cases) {
    TrainOptions o = valid_options();
    c.set(o);
    const std::string message = usage_message([&] { validate(o); });
    EXPECT_NE(message.find(c.needle), std::string::npos) << c.needle << " / " << message;
  }
}

// A config file's values are read as what they are: a whole number for an integer option and
// one the option can hold. "iters": 5.7 used to become 5 and 9999999999999999999999 was
// reported as "--iters must be >= 1". Messages name the file and the key, not a flag.
TEST(TrainConfig, ConfigValuesMustHaveTheFieldsTypeAndRangeAndNameFileAndKey) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"iters": 9999999999999999999999})", "cfg.json: \"iters\" must be a whole number from"},
      {R"({"iters": 5.7})", "cfg.json: \"iters\" must be a whole number from -9223372036854775808 to "
                            "9223372036854775807, got 5.7"},
      {R"({"iters": 0})", "cfg.json: \"iters\" must be from 1 to 1000000000, got 0"},
      {R"({"patch": 5000000000})", "cfg.json: \"patch\" must be a whole number from -2147483648 to 2147483647"},
      {R"({"patch": 64.0})", "cfg.json: \"patch\" must be a whole number"},
      {R"({"seed": -1})", "cfg.json: \"seed\" must be a whole number from 0 to 18446744073709551615, got -1"},
      {R"({"lr": 1e300})", "cfg.json: \"lr\" must be > 0 and at most 1, got 1e+300"},
      {R"({"lr": "fast"})", "cfg.json: \"lr\" must be a finite number, got \"fast\""},
      {R"({"epochs": -2})", "cfg.json: \"epochs\" must be from 0 to"},
      {R"({"augment": 1})", "cfg.json: \"augment\" must be true or false, got 1"},
      {R"({"noise": 25})", "cfg.json: \"noise\" must be a string, got 25"},
      {R"({"noise": "gauss:3"})", "cfg.json: \"noise\" "},
      {R"({"val_every": 0})", "cfg.json: \"val_every\" must be from 1"},
      {R"({"lambdas": [0.01, "x"]})", "cfg.json: \"lambdas\" must be an array of finite numbers"},
      {R"({"arch": {"widths": [8, 0]}})", "cfg.json: \"arch\": widths[1] must be in"},
      {R"({"itres": 10})", "cfg.json: unknown option \"itres\""},
      {"{nope", "cfg.json: not valid JSON"},
      {"[1,2]", "cfg.json: expected a JSON object"},
  };
  for (const auto& [json, needle] : cases) {
    const std::string message = config_message(json);
    EXPECT_NE(message.find(needle), std::string::npos) << json << "\n" << message;
    EXPECT_EQ(message.find("--"), std::string::npos) << "names a flag: " << message;
  }
  // Whole numbers, large ones included, are read exactly.
  const TrainOptions o = train_options_from_json(R"({"seed": 18446744073709551615, "iters": 1000000000,
      "lr": 1, "epochs": 2})", valid_options(), "cfg.json");
  EXPECT_EQ(o.seed, 18446744073709551615u);
  EXPECT_EQ(o.iterations, 1000000000);
  EXPECT_DOUBLE_EQ(o.lr, 1.0);
}

// The configs of the shipped models' runs still read and validate under the stricter reader.
TEST(TrainConfig, TheShippedModelsConfigsStillRead) {
  int read = 0;
  for (const char* name : {"gray", "color", "photo", "codec"}) {
    const std::string path = std::string(BOTTLENECK_SOURCE_DIR) + "/models/training/" + name + "/config.json";
    std::ifstream in(path);
    if (!in) continue;
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NO_THROW(validate(train_options_from_json(text, TrainOptions(), path))) << path;
    ++read;
  }
  EXPECT_GT(read, 0);
}

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
  o.patch = 96;
  o.batch = 8;
  o.iterations = 1234;
  o.lr = 2e-4;
  o.lr_min = 1e-6;
  o.schedule = "step";
  o.step_size = 100;
  o.step_gamma = 0.25;
  o.loss = "l1";
  o.precision = "bf16";
  o.augment = false;
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
  base.batch = 4;
  const TrainOptions o = train_options_from_json(R"({"iters": 10, "lr": 0.01})", base, "cfg.json");
  EXPECT_EQ(o.iterations, 10);
  EXPECT_DOUBLE_EQ(o.lr, 0.01);
  EXPECT_EQ(o.batch, 4);
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
  o.patch = 50;  // not a multiple of 4 for the default depth-2 unet
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
}

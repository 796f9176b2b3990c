#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "util/atomic_file.h"
#include "formats/checkpoint.h"
#include "util/error.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using bottleneck::test::TempDir;

namespace {
ArchSpec tiny_arch() {
  ArchSpec a;
  a.widths = {4, 8};
  return a;
}

CheckpointInfo tiny_info(const ArchSpec& arch) {
  CheckpointInfo info;
  info.arch = arch;
  info.iteration = 42;
  info.best_val_psnr = 31.25;
  info.last_val_psnr = std::nan("");
  info.noise = "gaussian:25";
  info.config_json = R"({"iters": 100})";
  info.loss_window_sum = 0.1 + 0.2;
  info.loss_window_count = 3;
  return info;
}

std::string expect_error(const std::string& path) {
  try {
    read_checkpoint_info(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.path(), path);
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error for " << path;
  return "";
}
}  // namespace

TEST(Checkpoint, RoundTripsWeightsOptimizerAndInfo) {
  TempDir dir;
  torch::manual_seed(1);
  Autoencoder model = make_model(tiny_arch());
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3));
  auto x = torch::rand({2, 1, 16, 16});
  torch::mse_loss(model->forward(x), x).backward();
  optimizer.step();
  save_checkpoint(dir / "a.ckpt", *model, &optimizer, tiny_info(tiny_arch()));

  const CheckpointInfo info = read_checkpoint_info(dir / "a.ckpt");
  EXPECT_EQ(info.iteration, 42);
  EXPECT_DOUBLE_EQ(info.best_val_psnr, 31.25);
  EXPECT_TRUE(std::isnan(info.last_val_psnr));
  EXPECT_EQ(info.noise, "gaussian:25");
  EXPECT_EQ(info.loss_window_sum, 0.1 + 0.2);  // exact: doubles survive JSON
  EXPECT_EQ(info.loss_window_count, 3);
  EXPECT_EQ(to_json(info.arch), to_json(tiny_arch()));
  EXPECT_EQ(info.format_version, kCheckpointVersion);

  torch::manual_seed(2);
  Autoencoder other = make_model(tiny_arch());
  torch::optim::Adam other_optimizer(other->parameters(), torch::optim::AdamOptions(1e-3));
  load_checkpoint_state(dir / "a.ckpt", *other, &other_optimizer);
  torch::NoGradGuard guard;
  EXPECT_TRUE(torch::equal(model->forward(x), other->forward(x)));
  // The optimizer state came along: one more identical step keeps the weights identical.
  for (auto* m : {&model, &other}) {
    (*m)->zero_grad();
  }
  {
    torch::AutoGradMode enable(true);
    torch::mse_loss(model->forward(x), x).backward();
    torch::mse_loss(other->forward(x), x).backward();
    optimizer.step();
    other_optimizer.step();
  }
  EXPECT_TRUE(torch::equal(model->forward(x), other->forward(x)));

  auto loaded = load_checkpoint(dir / "a.ckpt");
  EXPECT_FALSE(loaded.model->is_training());
}

TEST(Checkpoint, SaveLeavesNoTemporaryFiles) {
  TempDir dir;
  Autoencoder model = make_model(tiny_arch());
  save_checkpoint(dir / "a.ckpt", *model, nullptr, tiny_info(tiny_arch()));
  save_checkpoint(dir / "a.ckpt", *model, nullptr, tiny_info(tiny_arch()));
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(e.path().filename(), "a.ckpt");
  }
  EXPECT_EQ(files, 1);
}

TEST(Checkpoint, BadFilesGiveOneLineErrors) {
  TempDir dir;
  Autoencoder model = make_model(tiny_arch());
  save_checkpoint(dir / "good.ckpt", *model, nullptr, tiny_info(tiny_arch()));
  const std::string good = read_file(dir / "good.ckpt");

  EXPECT_NE(expect_error(dir / "missing.ckpt").find("no such file"), std::string::npos);
  fs::create_directory(dir / "dir.ckpt");
  EXPECT_NE(expect_error(dir / "dir.ckpt").find("is a directory"), std::string::npos);
  write_file_atomically(dir / "empty.ckpt", "");
  expect_error(dir / "empty.ckpt");
  write_file_atomically(dir / "truncated.ckpt", good.substr(0, good.size() / 2));
  expect_error(dir / "truncated.ckpt");
  write_file_atomically(dir / "random.ckpt", std::string(4096, '\x5a'));
  expect_error(dir / "random.ckpt");
  // A valid torch archive that is not ours.
  torch::serialize::OutputArchive foreign;
  foreign.write("weights", torch::ones({3}));
  foreign.save_to(dir / "foreign.ckpt");
  EXPECT_NE(expect_error(dir / "foreign.ckpt").find("not a Bottleneck checkpoint"), std::string::npos);
}

TEST(Checkpoint, RefusesWeightsForAnotherNetwork) {
  TempDir dir;
  Autoencoder model = make_model(tiny_arch());
  save_checkpoint(dir / "a.ckpt", *model, nullptr, tiny_info(tiny_arch()));
  ArchSpec wider = tiny_arch();
  wider.widths = {8, 16};
  Autoencoder other = make_model(wider);
  EXPECT_THROW(load_checkpoint_state(dir / "a.ckpt", *other, nullptr), Error);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3));
  try {
    load_checkpoint_state(dir / "a.ckpt", *model, &optimizer);
    FAIL() << "loaded optimizer state from a checkpoint without one";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no optimizer state"), std::string::npos) << e.what();
  }
}

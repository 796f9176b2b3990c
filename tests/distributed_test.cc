// Data-parallel training (distributed/): the launcher's environment, the process group's
// collectives with two ranks in one process, and whole runs of two CLI processes against one
// process with the doubled batch, a killed rank, a rank that stops answering, and torchrun.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <thread>

#include <torch/torch.h>

#include "distributed/data_parallel.h"
#include "distributed/distributed_env.h"
#include "distributed/process_group.h"
#include "formats/checkpoint.h"
#include "test_util.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace bottleneck;
using test::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A port nobody listens on now (the kernel's pick for a socket bound to port 0).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) close(fd);
    return 29511;
  }
  close(fd);
  return ntohs(a.sin_port);
}

DistributedOptions rank_options(int rank, int world, int port, double timeout_s) {
  DistributedOptions o;
  o.world_size = world;
  o.rank = rank;
  o.local_rank = rank;
  o.master_addr = "127.0.0.1";
  o.master_port = port;
  o.timeout_s = timeout_s;
  return o;
}

// Runs body(rank, group) for ranks 0 and 1 of one group, each on its own thread; returns each
// rank's error message ("" when it finished).
std::vector<std::string> two_ranks(const std::function<void(int, ProcessGroup&)>& body) {
  const int port = free_port();
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      try {
        auto group = ProcessGroup::join(rank_options(r, 2, port, 20), c10::Device(c10::kCPU), Logger(LogLevel::kQuiet));
        body(r, *group);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

// The bottleneck CLI as one rank: its own environment, its output in `log`.
pid_t start_rank(const std::string& args, int rank, int world, int port, const std::string& log) {
  const std::string sh = std::string("exec '") + BOTTLENECK_CLI_PATH + "' " + args + " > '" + log + "' 2>&1";
  const pid_t pid = fork();
  if (pid == 0) {
    setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
    setenv("RANK", std::to_string(rank).c_str(), 1);
    setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
    execl("/bin/sh", "sh", "-c", sh.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// The exit status of `pid` (128 + N for signal N) once it ends within `seconds`; -1 when it
// was still running (it is then killed, so no test leaves a process behind).
int wait_for(pid_t pid, double seconds) {
  const auto start = Clock::now();
  int status = 0;
  while (seconds_since(start) < seconds) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

std::string text_of(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string last_line(const std::string& text) {
  const size_t end = text.find_last_not_of('\n');
  if (end == std::string::npos) return "";
  const size_t start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
}

// Every tensor of a checkpoint's network by name (the archive's nesting joined with dots).
void read_tensors(torch::serialize::InputArchive& archive, const std::string& prefix,
                  std::map<std::string, torch::Tensor>* out) {
  for (const std::string& key : archive.keys()) {
    torch::Tensor t;
    if (archive.try_read(key, t)) {
      (*out)[prefix + key] = t;
      continue;
    }
    torch::serialize::InputArchive sub;
    if (archive.try_read(key, sub)) read_tensors(sub, prefix + key + ".", out);
  }
}

std::map<std::string, torch::Tensor> checkpoint_weights(const std::string& path) {
  torch::serialize::InputArchive archive, model;
  archive.load_from(path);
  archive.read("model", model);
  std::map<std::string, torch::Tensor> weights;
  read_tensors(model, "", &weights);
  return weights;
}

// The largest difference between two checkpoints' weights (infinity when their names differ).
double max_weight_difference(const std::string& a, const std::string& b, size_t* count) {
  const auto wa = checkpoint_weights(a), wb = checkpoint_weights(b);
  *count = wa.size();
  if (wa.size() != wb.size() || wa.empty()) return INFINITY;
  double worst = 0;
  for (const auto& [name, t] : wa) {
    const auto it = wb.find(name);
    if (it == wb.end() || !t.sizes().equals(it->second.sizes())) return INFINITY;
    worst = std::max(worst, (t.to(torch::kDouble) - it->second.to(torch::kDouble)).abs().max().item<double>());
  }
  return worst;
}

double max_abs_weight(const std::string& path) {
  double m = 0;
  for (const auto& [name, t] : checkpoint_weights(path)) m = std::max(m, t.abs().max().item<double>());
  return m;
}

const char* kDenoise = " --arch unet --widths 8,16 --patch 16 --threads 1 --layout nchw --noise gaussian:25 --seed 5"
                       " --val-every 1000000 --log-every 1 --lr 0.002";
const char* kCodec = " --task compress --codec-n 8 --codec-m 8 --patch 32 --lambdas 0.01,0.05 --threads 1 --seed 5"
                     " --val-every 1000000 --log-every 1 --lr 0.002";

}  // namespace

TEST(DistributedEnvironment, ReadsTheLaunchersVariablesAndNamesABadOne) {
  std::map<std::string, std::string> env;
  auto get = [&](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  EXPECT_FALSE(distributed_options_from_environment(get).enabled());  // nothing set: one process
  env["WORLD_SIZE"] = "1";
  EXPECT_FALSE(distributed_options_from_environment(get).enabled());
  env = {{"WORLD_SIZE", "4"}, {"RANK", "3"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29400"},
         {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "2"}};
  const DistributedOptions o = distributed_options_from_environment(get);
  EXPECT_TRUE(o.enabled());
  EXPECT_EQ(o.world_size, 4);
  EXPECT_EQ(o.rank, 3);
  EXPECT_EQ(o.local_rank, 1);
  EXPECT_EQ(o.master_addr, "node7");
  EXPECT_EQ(o.master_port, 29400);
  EXPECT_TRUE(o.agent_store);
  EXPECT_EQ(o.restart_count, 2);
  EXPECT_EQ(rank_text(o), "rank 3 of 4");
  env["TORCHELASTIC_USE_AGENT_STORE"] = "False";
  EXPECT_FALSE(distributed_options_from_environment(get).agent_store);

  const std::pair<std::pair<const char*, const char*>, const char*> bad[] = {
      {{"RANK", "4"}, "RANK=4 is not a whole number from 0 to 3"},
      {{"RANK", "x"}, "RANK=x is not a whole number"},
      {{"MASTER_PORT", "70000"}, "MASTER_PORT=70000 is not a whole number from 1 to 65535"},
      {{"WORLD_SIZE", "-2"}, "WORLD_SIZE=-2 is not a whole number"},
      {{"MASTER_ADDR", ""}, "MASTER_ADDR is not set"},
  };
  for (const auto& [change, message] : bad) {
    auto saved = env;
    env[change.first] = change.second;
    try {
      distributed_options_from_environment(get);
      ADD_FAILURE() << change.first << "=" << change.second << " was accepted";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
    env = saved;
  }
  EXPECT_TRUE(is_loopback_host("127.0.0.1"));
  EXPECT_TRUE(is_loopback_host("localhost"));
  EXPECT_FALSE(is_loopback_host("10.0.0.1"));
}

// Without Gloo's headers the build still works and says what is missing; with them, two ranks
// in one process average gradients exactly, share rank 0's weights and notice weights that differ.
TEST(ProcessGroup, TwoRanksAverageGradientsShareWeightsAndNoticeADifference) {
  if (!distributed_training_available()) {
    try {
      ProcessGroup::join(rank_options(0, 2, free_port(), 1), c10::Device(c10::kCPU), Logger(LogLevel::kQuiet));
      FAIL() << "joined without distributed support";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
      EXPECT_NE(std::string(e.what()).find("libgloo-dev"), std::string::npos) << e.what();
    }
    return;
  }
  std::vector<std::vector<double>> riding(2);
  std::vector<torch::Tensor> grads(2), weights(2);
  // Not std::vector<bool>: its elements share a word, so the two rank threads' writes would race.
  std::vector<char> any(2, 0);
  std::vector<std::string> differ(2);
  std::vector<size_t> buckets(2);
  const auto errors = two_ranks([&](int r, ProcessGroup& group) {
    torch::manual_seed(100 + r);  // different weights on each rank
    torch::nn::Sequential net(torch::nn::Linear(40, 30), torch::nn::Linear(30, 7));
    // Rank r's gradient of every element is (r + 1) x (its index + 1): the mean is 1.5 x that.
    for (auto& p : net->parameters()) p.mutable_grad() = (r + 1) * (torch::arange(p.numel()).view(p.sizes()) + 1.0f);
    // 1 KB buckets: from the last parameter, 7 + 210 + 30 floats fill one (988 bytes); the
    // 1200 floats of the first weight, larger than a bucket, are one of their own.
    GradientReducer reducer(group, net->parameters(), 1024);
    buckets[r] = reducer.bucket_count();
    riding[r] = reducer.average({r + 1.0, 10.0 * r}, "the test's all-reduce");
    grads[r] = torch::cat({net->parameters()[0].grad().flatten(), net->parameters()[3].grad().flatten()});
    any[r] = group.any(r == 1, "the test's vote");
    broadcast_module(group, *net, "the test's broadcast");
    weights[r] = torch::cat({net->parameters()[0].flatten(), net->parameters()[3].flatten()}).detach().clone();
    require_identical_weights(group, *net, "after the broadcast");
    if (r == 1) {
      torch::NoGradGuard no_grad;
      net->parameters()[2].view(-1)[3] += 1e-6f;
    }
    try {
      require_identical_weights(group, *net, "after a change");
    } catch (const Error& e) {
      differ[r] = e.what();
    }
  });
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  EXPECT_EQ(buckets[0], 2u);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(riding[r], (std::vector<double>{1.5, 5.0}));
    const int64_t n0 = 40 * 30, n3 = 7;
    const torch::Tensor expected = 1.5 * torch::cat({torch::arange(n0) + 1.0, torch::arange(n3) + 1.0}).to(torch::kFloat);
    EXPECT_TRUE(torch::equal(grads[r], expected)) << "rank " << r;
    EXPECT_TRUE(any[r]);
    EXPECT_NE(differ[r].find("rank " + std::to_string(r) + " of 2: the ranks' weights differ after a change"),
              std::string::npos)
        << differ[r];
  }
  EXPECT_TRUE(torch::equal(weights[0], weights[1]));
}

// Nobody at the rendezvous: each side fails within the timeout, naming its rank and the store.
TEST(ProcessGroup, ARankAloneFailsWithinTheTimeout) {
  if (!distributed_training_available()) GTEST_SKIP() << "built without Gloo (the test above checks the refusal)";
  for (int rank : {0, 1}) {
    const auto start = Clock::now();
    try {
      ProcessGroup::join(rank_options(rank, 2, free_port(), 1), c10::Device(c10::kCPU), Logger(LogLevel::kQuiet));
      FAIL() << "rank " << rank << " joined alone";
    } catch (const Error& e) {
      // Rank 1 finds no store; rank 0 hosts it and then waits in vain for rank 1's address.
      const std::string m = e.what();
      EXPECT_EQ(m.rfind("rank " + std::to_string(rank) + " of 2: could not ", 0), 0u) << m;
      EXPECT_NE(m.find("within 1 s (--dist-timeout)"), std::string::npos) << m;
      if (rank == 1) {
        EXPECT_NE(m.find("at the rendezvous store 127.0.0.1:"), std::string::npos) << m;
      }
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
    EXPECT_LT(seconds_since(start), 15.0) << "rank " << rank;
  }
}

// The test: 2 processes of batch 4 reach the weights of 1 process of batch 8 after K
// steps (to 1e-5), and their own weights are identical (the loop compares fingerprints at every
// checkpoint and would fail otherwise). The 2 processes start through scripts/train_distributed.sh.
TEST(Distributed, TwoProcessesTrainLikeOneWithTheDoubledBatch) {
  if (!distributed_training_available()) GTEST_SKIP() << "built without Gloo";
  TempDir dir;
  test::write_synthetic_images(dir / "train", 3, 1, 40, 40, 7);
  const std::string common = " --data " + dir / "train" + kDenoise + " --iters 4";
  const auto one = test::run_cli("train --out " + dir / "one" + common + " --batch 8");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const auto two = test::run_command("BOTTLENECK='" + std::string(BOTTLENECK_CLI_PATH) + "' MASTER_PORT=" +
                                     std::to_string(free_port()) + " '" + BOTTLENECK_SOURCE_DIR +
                                     "/scripts/train_distributed.sh' 2 --out " + dir / "two" + common + " --batch 4");
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_NE(two.output.find("[rank 0] training unet"), std::string::npos) << two.output;
  EXPECT_NE(two.output.find("2 processes of batch 4 (8 patches per step"), std::string::npos) << two.output;
  EXPECT_NE(two.output.find("weights identical on all)"), std::string::npos) << two.output;
  EXPECT_NE(text_of(dir / "two/config.json").find("\"processes\": 2"), std::string::npos);
  size_t tensors = 0;
  const double diff = max_weight_difference(dir / "one/last.ckpt", dir / "two/last.ckpt", &tensors);
  EXPECT_GT(tensors, 4u);
  EXPECT_LT(diff, 1e-5) << "weights of 2 x batch 4 against 1 x batch 8";
  std::cout << "largest weight difference, 2 x 4 against 1 x 8 patches: " << diff << "\n";
  // The runs moved away from their common start: the comparison is not of two untrained nets.
  const auto start = test::run_cli("train --out " + dir / "start" + common + " --batch 8 --iters 1 --lr 0.000001 --lr-min 0");
  ASSERT_EQ(start.exit_code, 0) << start.output;
  EXPECT_GT(max_weight_difference(dir / "one/last.ckpt", dir / "start/last.ckpt", &tensors), 1e-3);
  // metrics.csv's loss is the mean over both ranks' patches: the one-process run's loss.
  const std::string m1 = text_of(dir / "one/metrics.csv"), m2 = text_of(dir / "two/metrics.csv");
  EXPECT_EQ(std::count(m2.begin(), m2.end(), '\n'), std::count(m1.begin(), m1.end(), '\n'));
}

// The codec trains the same way: its rates, its latent noise and its gradient clipping are of the
// whole step, not of each rank's half.
TEST(Distributed, TheCodecTrainsLikeOneProcessWithTheDoubledBatch) {
  if (!distributed_training_available()) GTEST_SKIP() << "built without Gloo";
  TempDir dir;
  test::write_synthetic_images(dir / "train", 2, 3, 48, 48, 9);
  const std::string common = " --data " + dir / "train" + kCodec + " --iters 3";
  const auto one = test::run_cli("train --out " + dir / "one" + common + " --batch 4");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const int port = free_port();
  std::vector<pid_t> ranks;
  // Rank 1 is told of a run directory that does not exist, as on another machine: it writes
  // nothing, so it never notices.
  for (int r = 0; r < 2; ++r)
    ranks.push_back(start_rank("train --out " + (r == 0 ? dir / "two" : dir / "elsewhere/two") + common + " --batch 2",
                               r, 2, port, dir / ("rank" + std::to_string(r) + ".log")));
  for (int r = 0; r < 2; ++r)
    ASSERT_EQ(wait_for(ranks[r], 120), 0) << text_of(dir / ("rank" + std::to_string(r) + ".log"));
  EXPECT_FALSE(fs::exists(dir / "elsewhere"));
  size_t tensors = 0;
  const double diff = max_weight_difference(dir / "one/last.ckpt", dir / "two/last.ckpt", &tensors);
  EXPECT_GT(tensors, 8u);
  EXPECT_LT(diff, 1e-5) << "codec weights of 2 x batch 2 against 1 x batch 4 (largest weight "
                        << max_abs_weight(dir / "one/last.ckpt") << ")";
  std::cout << "largest weight difference, 2 x 2 against 1 x 4 patches: " << diff << "\n";
}

// The anomaly task's reconstruction objective gets the same for nothing but data_shard().
TEST(Distributed, ReconstructionTrainsLikeOneProcessWithTheDoubledBatch) {
  if (!distributed_training_available()) GTEST_SKIP() << "built without Gloo";
  TempDir dir;
  test::write_synthetic_images(dir / "train", 3, 1, 32, 32, 11);
  const std::string common = " --task reconstruct --head sigmoid --data " + dir / "train" + kDenoise + " --iters 3";
  const auto one = test::run_cli("train --out " + dir / "one" + common + " --batch 4");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const int port = free_port();
  std::vector<pid_t> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.push_back(start_rank("train --out " + dir / "two" + common + " --batch 2", r, 2, port,
                               dir / ("rank" + std::to_string(r) + ".log")));
  for (int r = 0; r < 2; ++r)
    ASSERT_EQ(wait_for(ranks[r], 120), 0) << text_of(dir / ("rank" + std::to_string(r) + ".log"));
  size_t tensors = 0;
  EXPECT_LT(max_weight_difference(dir / "one/last.ckpt", dir / "two/last.ckpt", &tensors), 1e-5);
  EXPECT_GT(tensors, 4u);
}

// The fault test: one of two ranks is killed mid-run; the other ends with a one-line
// error naming itself within the timeout, the last checkpoint stays good, and --resume (two
// ranks again, rank 1 gets the checkpoint from rank 0) continues from it.
TEST(DistributedFaults, AKilledRankEndsTheOtherAndTheRunResumes) {
  if (!distributed_training_available()) GTEST_SKIP() << "built without Gloo";
  TempDir dir;
  test::write_synthetic_images(dir / "train", 2, 1, 32, 32, 3);
  const std::string args = "train --data " + dir / "train" + " --out " + dir / "run" + kDenoise +
                           " --batch 2 --iters 1000000 --checkpoint-every 3 --dist-timeout 30";
  const int port = free_port();
  const pid_t rank0 = start_rank(args, 0, 2, port, dir / "rank0.log");
  const pid_t rank1 = start_rank(args, 1, 2, port, dir / "rank1.log");
  const auto start = Clock::now();
  while (!fs::exists(dir / "run/last.ckpt") && seconds_since(start) < 60)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(dir / "run/last.ckpt")) << text_of(dir / "rank0.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(rank1, SIGKILL);
  const auto killed = Clock::now();
  EXPECT_EQ(wait_for(rank1, 10), 128 + SIGKILL);
  const int status0 = wait_for(rank0, 40);
  const std::string log0 = text_of(dir / "rank0.log");
  EXPECT_NE(status0, 0) << log0;
  EXPECT_NE(status0, -1) << "rank 0 still ran 40 s after rank 1 died: " << log0;
  EXPECT_LT(seconds_since(killed), 31.0);
  EXPECT_EQ(last_line(log0).rfind("bottleneck train: error: rank 0 of 2: ", 0), 0u) << log0;
  EXPECT_NE(last_line(log0).find("failed"), std::string::npos) << log0;

  const int64_t at_kill = read_checkpoint_info(dir / "run/last.ckpt").iteration;
  EXPECT_GE(at_kill, 3);
  const std::string resume = "train --resume " + dir / "run" + " --threads 1 --stop-after 4 --dist-timeout 30";
  const int port2 = free_port();
  const pid_t again0 = start_rank(resume, 0, 2, port2, dir / "again0.log");
  const pid_t again1 = start_rank(resume, 1, 2, port2, dir / "again1.log");
  EXPECT_EQ(wait_for(again1, 120), 0) << text_of(dir / "again1.log");
  EXPECT_EQ(wait_for(again0, 120), 0) << text_of(dir / "again0.log");
  EXPECT_NE(text_of(dir / "again0.log").find("resuming " + dir / "run" + " at iteration " + std::to_string(at_kill)),
            std::string::npos)
      << text_of(dir / "again0.log");
  EXPECT_EQ(read_checkpoint_info(dir / "run/last.ckpt").iteration, at_kill + 4);

  // The same run resumed by one process is another run's batches, and is refused by name.
  const auto alone = test::run_cli(resume);
  EXPECT_NE(alone.exit_code, 0);
  EXPECT_NE(alone.output.find("its process count is \"2\", the run's config says \"1\""), std::string::npos)
      << alone.output;
}

// A rank that hangs (SIGSTOP) rather than dies: the other gives up after --dist-timeout.
TEST(DistributedFaults, ARankThatStopsAnsweringEndsTheOtherAfterTheTimeout) {
  if (!distributed_training_available()) GTEST_SKIP() << "built without Gloo";
  TempDir dir;
  test::write_synthetic_images(dir / "train", 2, 1, 32, 32, 3);
  const std::string args = "train --data " + dir / "train" + " --out " + dir / "run" + kDenoise +
                           " --batch 2 --iters 1000000 --checkpoint-every 2 --dist-timeout 3";
  const int port = free_port();
  const pid_t rank0 = start_rank(args, 0, 2, port, dir / "rank0.log");
  const pid_t rank1 = start_rank(args, 1, 2, port, dir / "rank1.log");
  const auto start = Clock::now();
  while (!fs::exists(dir / "run/last.ckpt") && seconds_since(start) < 60)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(dir / "run/last.ckpt")) << text_of(dir / "rank0.log");
  kill(rank1, SIGSTOP);
  const auto stopped = Clock::now();
  const int status0 = wait_for(rank0, 30);
  const double waited = seconds_since(stopped);
  kill(rank1, SIGKILL);
  wait_for(rank1, 10);
  const std::string log0 = text_of(dir / "rank0.log");
  EXPECT_NE(status0, 0) << log0;
  EXPECT_NE(status0, -1) << "rank 0 hung: " << log0;
  EXPECT_GE(waited, 2.5) << log0;
  EXPECT_LT(waited, 20.0) << log0;
  EXPECT_EQ(last_line(log0).rfind("bottleneck train: error: rank 0 of 2: ", 0), 0u) << log0;
}

// Debian's torchrun 1.13 (python3-torch) starts two ranks; --redirects 1 --tee 1 avoid its crash
// on Python 3.11 (the README says why).
TEST(DistributedLaunch, TorchrunStartsTwoRanks) {
  if (!distributed_training_available()) GTEST_SKIP() << "built without Gloo";
  if (!fs::exists("/usr/bin/torchrun")) GTEST_SKIP() << "no /usr/bin/torchrun (Debian's python3-torch)";
  TempDir dir;
  test::write_synthetic_images(dir / "train", 2, 1, 32, 32, 3);
  const auto r = test::run_command(
      "cd '" + dir.path() + "' && /usr/bin/torchrun --standalone --nproc_per_node 2 --redirects 1 --tee 1 --no_python '" +
      BOTTLENECK_CLI_PATH + "' train --data " + dir / "train" + " --out " + dir / "run" + kDenoise +
      " --batch 2 --iters 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("2 processes of batch 2"), std::string::npos) << r.output;
  EXPECT_EQ(read_checkpoint_info(dir / "run/last.ckpt").iteration, 3);
}

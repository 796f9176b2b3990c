// The caching CPU allocator: reuse, fit rule, the memory bound, thread safety, LibTorch install.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "runtime/cpu_allocator.h"

using namespace bottleneck;

namespace {

constexpr size_t kMB = size_t{1} << 20;

// What LibTorch calls: through the base class, whichever allocate() the headers declare virtual.
c10::DataPtr allocate(c10::Allocator& allocator, size_t bytes) { return allocator.allocate(bytes); }

TEST(CpuAllocator, AFreedLargeBlockIsHandedOutAgain) {
  CachingCpuAllocator allocator(64 * kMB);
  void* first = nullptr;
  {
    c10::DataPtr block = allocate(allocator, 3 * kMB);
    first = block.get();
    std::memset(first, 0x5a, 3 * kMB);
  }
  EXPECT_EQ(allocator.stats().cached_bytes, 3 * kMB);
  c10::DataPtr again = allocate(allocator, 3 * kMB);
  EXPECT_EQ(again.get(), first);
  const CpuCacheStats stats = allocator.stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.cached_bytes, 0u);
  EXPECT_EQ(stats.live_bytes, 3 * kMB);
}

TEST(CpuAllocator, TakesTheSmallestCachedBlockThatHoldsTheRequestUpToFourTimesItsSize) {
  CachingCpuAllocator allocator(64 * kMB);
  void* big = allocate(allocator, 4 * kMB).get();  // freed at once: cached
  void* small = nullptr;
  {
    c10::DataPtr block = allocate(allocator, kMB - 4096);  // the 4 MB block is over 4x: new
    small = block.get();
    EXPECT_NE(small, big);
  }
  c10::DataPtr fits = allocate(allocator, kMB + 4096);  // the small block cannot hold it
  EXPECT_EQ(fits.get(), big);
  c10::DataPtr exact = allocate(allocator, kMB - 8192);
  EXPECT_EQ(exact.get(), small);
  EXPECT_EQ(allocator.stats().hits, 2u);
  EXPECT_EQ(allocator.stats().misses, 2u);
}

TEST(CpuAllocator, SmallBlocksAndZeroBytesBypassTheCache) {
  CachingCpuAllocator allocator(64 * kMB);
  for (int i = 0; i < 3; ++i) {
    c10::DataPtr block = allocate(allocator, 1000);
    ASSERT_NE(block.get(), nullptr);
    std::memset(block.get(), 1, 1000);
  }
  c10::DataPtr empty = allocate(allocator, 0);
  EXPECT_EQ(empty.get(), nullptr);
  const CpuCacheStats stats = allocator.stats();
  EXPECT_EQ(stats.hits + stats.misses, 0u);
  EXPECT_EQ(stats.cached_bytes, 0u);
}

TEST(CpuAllocator, DataIsAlignedFor512BitLoadsAndRawInterfaceWorks) {
  CachingCpuAllocator allocator(64 * kMB);
  for (size_t bytes : {size_t{1}, size_t{777}, CachingCpuAllocator::kMinCachedBytes, 5 * kMB + 3}) {
    c10::DataPtr block = allocate(allocator, bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(block.get()) % 64, 0u) << bytes;
    EXPECT_EQ(block.get(), block.get_context()) << "raw_allocate needs data == context";
  }
  // oneDNN's scratch memory comes through raw_allocate / raw_deallocate.
  CachingCpuAllocator fresh(64 * kMB);
  ASSERT_NE(fresh.raw_deleter(), nullptr);
  void* raw = fresh.raw_allocate(2 * kMB);
  std::memset(raw, 7, 2 * kMB);
  fresh.raw_deallocate(raw);
  EXPECT_EQ(fresh.stats().cached_bytes, 2 * kMB);
  c10::DataPtr reused = allocate(fresh, 2 * kMB);
  EXPECT_EQ(reused.get(), raw);

  std::vector<char> src(5000, 'x'), dst(5000, 0);
  allocator.copy_data(dst.data(), src.data(), src.size());
  EXPECT_EQ(dst, src);
}

TEST(CpuAllocator, AMissGivesBackCachedBlocksRatherThanGrowPastPeakPlusHeadroom) {
  CachingCpuAllocator allocator(kMB);
  {
    std::vector<c10::DataPtr> blocks;
    for (int i = 0; i < 3; ++i) blocks.push_back(allocate(allocator, 2 * kMB));
  }
  EXPECT_EQ(allocator.stats().cached_bytes, 6 * kMB);
  // 16 MB fits no cached block; keeping the 6 MB would put in-use plus cached at 22 MB, over
  // the peak so far (6 MB) plus headroom (1 MB) and over the 16 MB that must exist anyway.
  c10::DataPtr big = allocate(allocator, 16 * kMB);
  CpuCacheStats stats = allocator.stats();
  EXPECT_EQ(stats.cached_bytes, 0u);
  EXPECT_EQ(stats.evictions, 3u);
  EXPECT_EQ(stats.peak_requested_bytes, 16 * kMB);
}

// Random traffic from several threads: every block keeps its own bytes (no block is handed to
// two users), and the cache never holds more than the larger of (most requested at once +
// headroom) and the most ever in use, however the threads interleave.
TEST(CpuAllocator, ConcurrentUseKeepsBlocksDistinctAndMemoryBounded) {
  const size_t headroom = 8 * kMB;
  CachingCpuAllocator allocator(headroom);
  auto worker = [&](unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<size_t> size(CachingCpuAllocator::kMinCachedBytes / 2, 3 * kMB);
    std::vector<std::pair<c10::DataPtr, size_t>> held;
    for (int step = 0; step < 1500; ++step) {
      if (held.size() < 6 && (held.empty() || rng() % 2)) {
        const size_t bytes = size(rng);
        c10::DataPtr block = allocate(allocator, bytes);
        std::memset(block.get(), static_cast<int>(seed), bytes);
        held.emplace_back(std::move(block), bytes);
      } else {
        const size_t i = rng() % held.size();
        const auto* data = static_cast<const unsigned char*>(held[i].first.get());
        const size_t bytes = held[i].second;
        ASSERT_EQ(data[0], static_cast<unsigned char>(seed));
        ASSERT_EQ(data[bytes / 2], static_cast<unsigned char>(seed));
        ASSERT_EQ(data[bytes - 1], static_cast<unsigned char>(seed));
        held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
  };
  std::vector<std::thread> threads;
  for (unsigned t = 1; t <= 4; ++t) threads.emplace_back(worker, t);
  for (auto& t : threads) t.join();
  const CpuCacheStats stats = allocator.stats();
  EXPECT_EQ(stats.live_bytes, 0u);
  EXPECT_GT(stats.hits, stats.misses);
  EXPECT_LE(stats.peak_cached_bytes, std::max(stats.peak_requested_bytes + headroom, stats.peak_live_bytes));
}

TEST(CpuAllocator, SingleThreadInUsePlusCachedStaysWithinPeakPlusHeadroom) {
  const size_t headroom = 4 * kMB;
  CachingCpuAllocator allocator(headroom);
  std::mt19937 rng(3);
  std::uniform_int_distribution<size_t> size(CachingCpuAllocator::kMinCachedBytes, 6 * kMB);
  std::vector<c10::DataPtr> held;
  size_t most_in_use = 0;
  for (int step = 0; step < 3000; ++step) {
    if (held.size() < 8 && (held.empty() || rng() % 2)) {
      held.push_back(allocate(allocator, size(rng)));
    } else {
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(rng() % held.size()));
    }
    const CpuCacheStats s = allocator.stats();
    most_in_use = std::max(most_in_use, s.live_bytes);
    ASSERT_EQ(s.peak_live_bytes, most_in_use);
    ASSERT_LE(s.live_bytes + s.cached_bytes, std::max(s.peak_requested_bytes + headroom, most_in_use))
        << "step " << step;
  }
  EXPECT_GT(allocator.stats().hits, 0u);
  held.clear();
  allocator.set_headroom(0);
  EXPECT_EQ(allocator.stats().cached_bytes, 0u);
  { c10::DataPtr block = allocate(allocator, 2 * kMB); }
  EXPECT_EQ(allocator.stats().cached_bytes, 0u) << "headroom 0 caches nothing";
}

// Installed as LibTorch's CPU allocator: tensors come from it, results are unchanged, and a
// forked child (model_file's probe) can allocate.
TEST(CpuAllocator, InstalledItServesLibTorchTensors) {
  torch::manual_seed(1);
  const torch::Tensor input = torch::rand({1, 8, 256, 256});
  const torch::Tensor weight = torch::rand({8, 8, 3, 3});
  const torch::Tensor before = torch::conv2d(input, weight, {}, 1, 1);
  if (!install_caching_cpu_allocator(64 * kMB)) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "sanitizer build: the cache stays off so AddressSanitizer sees every free";
#else
    FAIL() << "install_caching_cpu_allocator refused in a normal build";
#endif
  }
  const uint64_t misses = caching_cpu_allocator_stats().misses;
  for (int i = 0; i < 3; ++i) {
    const torch::Tensor after = torch::conv2d(input, weight, {}, 1, 1);
    EXPECT_TRUE(torch::equal(before, after));
  }
  const CpuCacheStats stats = caching_cpu_allocator_stats();
  EXPECT_GT(stats.misses, misses);
  EXPECT_GE(stats.hits, 2u) << "the second and third outputs reuse the first one's block";

  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // no torch ops here: the parent's OpenMP workers do not exist in the child
    c10::DataPtr block = c10::GetAllocator(c10::DeviceType::CPU)->allocate(16 * kMB);
    std::memset(block.get(), 1, 16 * kMB);
    _exit(static_cast<unsigned char*>(block.get())[16 * kMB - 1] == 1 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  install_caching_cpu_allocator(0);  // caching off again: later tests in this binary see no cache
  EXPECT_EQ(caching_cpu_allocator_stats().cached_bytes, 0u);
}

}  // namespace

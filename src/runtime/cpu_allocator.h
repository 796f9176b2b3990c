#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include <c10/core/Allocator.h>

namespace bottleneck {

struct CpuCacheStats {
  uint64_t hits = 0;          // large allocations served from the cache
  uint64_t misses = 0;        // large allocations that went to the system
  uint64_t evictions = 0;     // cached blocks given back to stay within peak + headroom
  size_t cached_bytes = 0;    // bytes held in free blocks now
  size_t peak_cached_bytes = 0;
  size_t live_bytes = 0;      // bytes of large blocks in use now
  size_t peak_live_bytes = 0; // most bytes of large blocks ever in use at once
  size_t peak_requested_bytes = 0;  // most bytes of large blocks ever requested at once
};

// A CPU allocator for LibTorch that keeps freed large blocks and hands them out again.
//
// Why: glibc serves every block above its mmap threshold (at most 32 MB) with a fresh mmap, so
// each full-resolution activation of a forward pass (50-140 MB) is faulted in and zeroed again on
// every pass and every training step. Raising glibc's threshold instead (MALLOC_MMAP_THRESHOLD_)
// made the model 1.5x faster but let its heap fragment to 2.7-4.1 GB.
//
// Policy (chosen by replaying the allocation traces of a 12 MP image, the Kodak folder and a
// training run against alternatives): blocks of at least kMinCachedBytes are kept when freed;
// smaller ones go straight to malloc. A request takes the smallest cached block that holds it
// and is at most 4x its size. Before a miss maps new memory, the least recently freed blocks are
// given back while in-use plus cached bytes would exceed the most ever requested at once plus
// `headroom_bytes`. So in-use plus cached memory stays within the larger of (peak requested +
// headroom) and the most ever in use (blocks may be up to 4x their request), whatever the image
// size, while the repeating shapes of tiles and training steps are served without new pages.
//
// Thread-safe. Every block it returns must be freed (by LibTorch, through its deleter) before the
// allocator is destroyed; the process-wide one (install_caching_cpu_allocator) never is.
class CachingCpuAllocator final : public c10::Allocator {
 public:
  static constexpr size_t kMinCachedBytes = size_t{256} << 10;

  // headroom_bytes 0 caches nothing.
  explicit CachingCpuAllocator(size_t headroom_bytes);
  ~CachingCpuAllocator() override;
  CachingCpuAllocator(const CachingCpuAllocator&) = delete;
  CachingCpuAllocator& operator=(const CachingCpuAllocator&) = delete;

  // LibTorch 1.x declares `allocate(size_t) const` and LibTorch 2.x (from 2.3) a non-const
  // `allocate(size_t)` plus a pure `copy_data`. Declaring both overloads and copy_data without
  // `override` makes whichever the headers declare the override, so one source builds on both.
  c10::DataPtr allocate(size_t bytes) const;
  c10::DataPtr allocate(size_t bytes);
  void copy_data(void* dest, const void* src, size_t count) const;
  c10::DeleterFnPtr raw_deleter() const override;

  // Changes the headroom; 0 gives every cached block back and caches nothing more.
  void set_headroom(size_t headroom_bytes);
  // Gives every cached block back to the system.
  void trim();
  CpuCacheStats stats() const;

  struct State;

 private:
  friend bool install_caching_cpu_allocator(size_t headroom_bytes);
  std::unique_ptr<State> state_;
};

// Makes a process-wide CachingCpuAllocator LibTorch's CPU allocator (the first call with a
// headroom above 0 installs it; later calls only change its headroom, 0 turning caching off). Tensors
// allocated before keep their own deleter. Returns whether it is installed: false, installing
// nothing, for a first headroom of 0 and in a sanitizer build, where reusing blocks would hide
// use-after-free from AddressSanitizer.
bool install_caching_cpu_allocator(size_t headroom_bytes);

// The installed allocator's statistics (all zero when none is installed).
CpuCacheStats caching_cpu_allocator_stats();

}  // namespace bottleneck

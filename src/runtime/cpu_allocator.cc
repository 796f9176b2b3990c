#include "runtime/cpu_allocator.h"

#include <pthread.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <new>

#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BOTTLENECK_SANITIZED_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define BOTTLENECK_SANITIZED_BUILD 1
#endif
#endif

namespace bottleneck {
namespace {

// LibTorch's own CPU allocator aligns to 64 bytes (AVX-512 loads); so do we. The header sits in
// front of the data so that data == context, which raw_allocate requires (oneDNN's scratch memory
// comes through it), and so the deleter finds its allocator without a lookup table.
constexpr size_t kAlignment = 64;
constexpr size_t kHeaderBytes = 64;
constexpr size_t kPage = 4096;

struct Header;
using Lru = std::list<Header*>;
using BySize = std::multimap<size_t, Header*>;

struct Header {
  CachingCpuAllocator::State* owner;  // null for blocks too small to cache
  size_t capacity;                    // usable bytes after the header
  size_t requested;                   // bytes asked for by the current user of the block
  Lru::iterator lru;                  // valid while the block is cached
  BySize::iterator by_size;           // valid while the block is cached
};
static_assert(sizeof(Header) <= kHeaderBytes, "header must fit in front of the aligned data");

Header* header_of(void* data) { return reinterpret_cast<Header*>(static_cast<char*>(data) - kHeaderBytes); }
void* data_of(Header* header) { return reinterpret_cast<char*>(header) + kHeaderBytes; }

Header* system_allocate(size_t capacity, CachingCpuAllocator::State* owner) {
  void* base = nullptr;
  if (capacity > SIZE_MAX - kHeaderBytes || posix_memalign(&base, kAlignment, kHeaderBytes + capacity) != 0)
    return nullptr;
  return new (base) Header{owner, capacity, capacity, {}, {}};
}

void system_free(Header* header) {
  header->~Header();
  std::free(header);
}

void delete_data(void* data);

c10::DataPtr wrap(Header* header) {
  void* data = data_of(header);
  return {data, data, &delete_data, c10::Device(c10::DeviceType::CPU)};
}

}  // namespace

struct CachingCpuAllocator::State {
  std::mutex mutex;
  size_t headroom = 0;
  Lru lru;          // cached blocks, most recently freed first
  BySize by_size;   // the same blocks by capacity
  size_t live_capacity = 0;   // capacity of the cacheable blocks in use
  size_t live_requested = 0;  // what their users asked for
  size_t peak_requested = 0;
  CpuCacheStats stats;

  // Requires the lock.
  void evict_least_recent() {
    Header* victim = lru.back();
    lru.pop_back();
    by_size.erase(victim->by_size);
    stats.cached_bytes -= victim->capacity;
    ++stats.evictions;
    system_free(victim);
  }

  // Requires the lock.
  void evict_all() {
    while (!lru.empty()) evict_least_recent();
  }

  // Requires the lock. Counts a block as in use from the moment it is promised, so that another
  // thread's make_room, between this one's and its mapping, sees the memory already spoken for.
  void take(size_t capacity, size_t requested) {
    live_capacity += capacity;
    live_requested += requested;
    peak_requested = std::max(peak_requested, live_requested);
    stats.peak_live_bytes = std::max(stats.peak_live_bytes, live_capacity);
  }
  void untake(size_t capacity, size_t requested) {
    live_capacity -= capacity;
    live_requested -= requested;
  }

  // Requires the lock. A best fit within 4x: a larger block left unused would hold its pages
  // anyway, and reusing it for a smaller tensor spares the system a fresh mapping of that size.
  Header* find(size_t capacity) {
    auto it = by_size.lower_bound(capacity);
    if (it == by_size.end() || it->first / 4 > capacity) return nullptr;
    Header* header = it->second;
    by_size.erase(it);
    lru.erase(header->lru);
    stats.cached_bytes -= header->capacity;
    return header;
  }

  // Requires the lock. Before `capacity` new bytes are mapped, gives back the least recently
  // freed blocks while blocks in use plus cached would pass the largest amount ever requested
  // at once plus the headroom. Memory in use plus cache thus never exceeds the larger of that
  // and the most ever in use: the memory cost is bounded, not just the cache's size.
  void make_room(size_t capacity) {
    const size_t budget = std::max(peak_requested + headroom, live_capacity + capacity);
    while (!lru.empty() && live_capacity + stats.cached_bytes + capacity > budget) evict_least_recent();
  }

  void release(Header* header) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      untake(header->capacity, header->requested);
      if (headroom > 0) {
        header->lru = lru.insert(lru.begin(), header);
        header->by_size = by_size.emplace(header->capacity, header);
        stats.cached_bytes += header->capacity;
        stats.peak_cached_bytes = std::max(stats.peak_cached_bytes, stats.cached_bytes);
        return;
      }
    }
    system_free(header);
  }
};

namespace {

void delete_data(void* data) {
  if (data == nullptr) return;
  Header* header = header_of(data);
  if (header->owner != nullptr) {
    header->owner->release(header);
  } else {
    system_free(header);
  }
}

}  // namespace

CachingCpuAllocator::CachingCpuAllocator(size_t headroom_bytes) : state_(std::make_unique<State>()) {
  state_->headroom = headroom_bytes;
}

CachingCpuAllocator::~CachingCpuAllocator() { trim(); }

c10::DataPtr CachingCpuAllocator::allocate(size_t bytes) const {
  if (bytes == 0) return {nullptr, nullptr, &delete_data, c10::Device(c10::DeviceType::CPU)};
  State& state = *state_;
  if (bytes < kMinCachedBytes) {
    Header* header = system_allocate(bytes, nullptr);
    TORCH_CHECK(header != nullptr, "CPU allocator: out of memory allocating ", bytes, " bytes");
    return wrap(header);
  }
  const size_t capacity = (bytes + kPage - 1) / kPage * kPage;
  {
    std::lock_guard<std::mutex> lock(state.mutex);
    if (Header* header = state.find(capacity)) {
      header->requested = capacity;
      state.take(header->capacity, capacity);
      ++state.stats.hits;
      return wrap(header);
    }
    ++state.stats.misses;
    state.make_room(capacity);
    state.take(capacity, capacity);
  }
  Header* header = system_allocate(capacity, &state);
  if (header == nullptr) {
    // Cached blocks of other sizes may be what stands between us and the memory we need.
    {
      std::lock_guard<std::mutex> lock(state.mutex);
      state.evict_all();
    }
    header = system_allocate(capacity, &state);
  }
  if (header == nullptr) {
    std::lock_guard<std::mutex> lock(state.mutex);
    state.untake(capacity, capacity);
  }
  TORCH_CHECK(header != nullptr, "CPU allocator: out of memory allocating ", bytes, " bytes");
  return wrap(header);
}

c10::DataPtr CachingCpuAllocator::allocate(size_t bytes) {
  return static_cast<const CachingCpuAllocator*>(this)->allocate(bytes);
}

void CachingCpuAllocator::copy_data(void* dest, const void* src, size_t count) const {
  if (count > 0) std::memcpy(dest, src, count);
}

c10::DeleterFnPtr CachingCpuAllocator::raw_deleter() const { return &delete_data; }

void CachingCpuAllocator::set_headroom(size_t headroom_bytes) {
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->headroom = headroom_bytes;
  if (headroom_bytes == 0) state_->evict_all();
}

void CachingCpuAllocator::trim() {
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->evict_all();
}

CpuCacheStats CachingCpuAllocator::stats() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  CpuCacheStats stats = state_->stats;
  stats.live_bytes = state_->live_capacity;
  stats.peak_requested_bytes = state_->peak_requested;
  return stats;
}

namespace {

// LibTorch keeps a raw pointer to its CPU allocator and tensors may be freed during static
// destruction, so the process-wide allocator is created once and never destroyed.
CachingCpuAllocator* installed = nullptr;
CachingCpuAllocator::State* installed_state = nullptr;
std::mutex install_mutex;

// model_file's probe forks; a child forked while another thread held the cache's lock would
// wait for it forever.
void lock_before_fork() {
  if (installed_state) installed_state->mutex.lock();
}
void unlock_after_fork() {
  if (installed_state) installed_state->mutex.unlock();
}

}  // namespace

bool install_caching_cpu_allocator(size_t headroom_bytes) {
#ifdef BOTTLENECK_SANITIZED_BUILD
  (void)headroom_bytes;
  return false;
#else
  std::lock_guard<std::mutex> lock(install_mutex);
  if (installed != nullptr) {
    installed->set_headroom(headroom_bytes);
    return true;
  }
  if (headroom_bytes == 0) return false;
  installed = new CachingCpuAllocator(headroom_bytes);
  installed_state = installed->state_.get();
  pthread_atfork(&lock_before_fork, &unlock_after_fork, &unlock_after_fork);
  c10::SetCPUAllocator(installed, /*priority=*/0);
  return true;
#endif
}

CpuCacheStats caching_cpu_allocator_stats() {
  std::lock_guard<std::mutex> lock(install_mutex);
  return installed ? installed->stats() : CpuCacheStats{};
}

}  // namespace bottleneck

// Owning scratch arrays for code compiled per ISA, and the per-thread cache of their storage.
//
// Not std::vector: its out-of-line member templates (_M_fill_assign, _M_default_append, ...) are emitted
// as weak symbols in namespace std, so an AVX-512 TU's copy, full of zmm instructions, could be the one
// the linker keeps for an AVX2 TU of the same program (Note [ABI namespace]). This type lives in the
// per-ISA namespace, and its loops are ours. Storage is aligned to 64 bytes, a cache line: a 64-byte
// vector load from a row that starts mid-line would touch two lines (a split load) every time.
#include "alibi/detail/config.hpp"
// Per-target header: no #pragma once (Note [per-target headers] in detail/config.hpp).
#if (ALIBI_PASS == 0 && !defined(ALIBI_DETAIL_BUFFER_HPP_0)) || \
    (ALIBI_PASS == 1 && !defined(ALIBI_DETAIL_BUFFER_HPP_1)) || \
    (ALIBI_PASS == 2 && !defined(ALIBI_DETAIL_BUFFER_HPP_2))
#if ALIBI_PASS == 0
#define ALIBI_DETAIL_BUFFER_HPP_0
#elif ALIBI_PASS == 1
#define ALIBI_DETAIL_BUFFER_HPP_1
#else
#define ALIBI_DETAIL_BUFFER_HPP_2
#endif
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

ALIBI_NAMESPACE_BEGIN
namespace detail {

// Note [scratch reuse]: every call allocates its scratch (a worker's packed blocks, S, row state, the
// split-K partial states) and frees it at its end: a few dozen blocks, a few hundred KiB. Handed back to
// malloc, the top of the heap is trimmed and grown again on every call, and the system calls and page
// faults that costs (0.2-0.4 ms per call in a KVM guest, bench/RESULTS.md 2026-12-02) exceed the
// arithmetic of a 1024-key decode. So a freed block goes to a small cache of the freeing thread, and that
// thread's next allocations take cached blocks back (the smallest that fits). It holds at most
// kScratchCacheBlocks blocks of kScratchCacheBytes in all and frees them when the thread exits. Storage is
// never read before it is written (Buffer initialises every element), so reuse cannot change a result.
// Sanitizer builds bypass the cache: AddressSanitizer then sees every use after free.
// -DALIBI_SCRATCH_CACHE=0 turns the cache off (memory checkers such as valgrind).
#ifndef ALIBI_SCRATCH_CACHE
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ALIBI_SCRATCH_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define ALIBI_SCRATCH_CACHE 0
#endif
#endif
#endif
#ifndef ALIBI_SCRATCH_CACHE
#define ALIBI_SCRATCH_CACHE 1
#endif

class ScratchCache {
 public:
  static constexpr std::size_t kAlignment = 64;
  static constexpr int kScratchCacheBlocks = 64;
  static constexpr std::size_t kScratchCacheBytes = std::size_t{16} << 20;

  ScratchCache() = default;
  ScratchCache(const ScratchCache&) = delete;
  ScratchCache& operator=(const ScratchCache&) = delete;
  ~ScratchCache() {
    for (int i = 0; i < count_; ++i) free_block(blocks_[i]);
  }

  // The calling thread's cache.
  static ScratchCache& of_this_thread() {
    thread_local ScratchCache cache;
    return cache;
  }

  // A block of at least `bytes` (a multiple of kAlignment): a cached one that is not much larger, else new.
  std::pair<void*, std::size_t> take(std::size_t bytes) {
    int best = -1;
    for (int i = 0; i < count_; ++i) {
      const std::size_t have = blocks_[i].bytes;
      if (have >= bytes && have <= 2 * bytes + 4096 && (best < 0 || have < blocks_[best].bytes)) best = i;
    }
    if (best < 0) return {::operator new (bytes, std::align_val_t{kAlignment}), bytes};
    const Block block = blocks_[best];
    blocks_[best] = blocks_[--count_];
    held_ -= block.bytes;
    return {block.data, block.bytes};
  }

  // Keeps the block for reuse if there is room, else frees it.
  void give(void* data, std::size_t bytes) {
    if (count_ < kScratchCacheBlocks && held_ + bytes <= kScratchCacheBytes) {
      blocks_[count_++] = Block{data, bytes};
      held_ += bytes;
    } else {
      free_block(Block{data, bytes});
    }
  }

 private:
  struct Block {
    void* data;
    std::size_t bytes;
  };
  static void free_block(const Block& block) { ::operator delete (block.data, std::align_val_t{kAlignment}); }

  Block blocks_[kScratchCacheBlocks] = {};
  int count_ = 0;
  std::size_t held_ = 0;
};

template <class T>
class Buffer {
  static constexpr std::size_t kAlignment = ScratchCache::kAlignment;

 public:
  Buffer() = default;
  /// n value-initialised elements.
  explicit Buffer(std::size_t n) {
    reserve_exactly(n);
    for (std::size_t i = 0; i < n; ++i) new (data_ + i) T();
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept : data_(other.data_), size_(other.size_), bytes_(other.bytes_) {
    other.data_ = nullptr;
    other.size_ = 0;
    other.bytes_ = 0;
  }
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = other.data_;
      size_ = other.size_;
      bytes_ = other.bytes_;
      other.data_ = nullptr;
      other.size_ = 0;
      other.bytes_ = 0;
    }
    return *this;
  }
  ~Buffer() { release(); }

  /// n elements, all equal to `value` (reallocates only when the size changes).
  void assign(std::size_t n, const T& value) {
    if (n != size_) {
      release();
      reserve_exactly(n);
      for (std::size_t i = 0; i < n; ++i) new (data_ + i) T(value);
      return;
    }
    for (std::size_t i = 0; i < n; ++i) data_[i] = value;
  }

  /// n elements the caller writes before it reads any (trivial T only): storage without the fill, for
  /// scratch that every call overwrites (filling it is part of a short decode's fixed cost).
  void assign_for_overwrite(std::size_t n) {
    static_assert(std::is_trivially_default_constructible<T>::value, "only trivial elements may start unset");
    if (n == size_) return;
    release();
    reserve_exactly(n);
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }

 private:
  // Storage for n elements (not yet constructed); the buffer must be empty.
  void reserve_exactly(std::size_t n) {
    if (n == 0) return;
    // T may itself be a pointer (a buffer of row pointers): n elements of sizeof(T) each is what is meant.
    const std::size_t bytes =
        (n * sizeof(T) + kAlignment - 1) / kAlignment * kAlignment;  // NOLINT(bugprone-sizeof-expression)
#if ALIBI_SCRATCH_CACHE
    const std::pair<void*, std::size_t> block = ScratchCache::of_this_thread().take(bytes);
    data_ = static_cast<T*>(block.first);
    bytes_ = block.second;
#else
    data_ = static_cast<T*>(::operator new (bytes, std::align_val_t{kAlignment}));
    bytes_ = bytes;
#endif
    size_ = n;
  }
  void release() {
    if (data_ == nullptr) return;
    if (!std::is_trivially_destructible<T>::value)
      for (std::size_t i = 0; i < size_; ++i) data_[i].~T();
#if ALIBI_SCRATCH_CACHE
    ScratchCache::of_this_thread().give(data_, bytes_);
#else
    ::operator delete (data_, std::align_val_t{kAlignment});
#endif
    data_ = nullptr;
    size_ = 0;
    bytes_ = 0;
  }

  T* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t bytes_ = 0;  // of the storage block
};

}  // namespace detail
ALIBI_NAMESPACE_END
#endif  // per-target guard

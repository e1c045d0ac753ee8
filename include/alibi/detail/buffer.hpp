// Owning scratch arrays for code compiled per ISA.
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

ALIBI_NAMESPACE_BEGIN
namespace detail {

template <class T>
class Buffer {
  static constexpr std::size_t kAlignment = 64;

 public:
  Buffer() = default;
  /// n value-initialised elements.
  explicit Buffer(std::size_t n) : data_(allocate(n)), size_(n) {}
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept : data_(other.data_), size_(other.size_) {
    other.data_ = nullptr;
    other.size_ = 0;
  }
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      release(data_, size_);
      data_ = other.data_;
      size_ = other.size_;
      other.data_ = nullptr;
      other.size_ = 0;
    }
    return *this;
  }
  ~Buffer() { release(data_, size_); }

  /// n elements, all equal to `value` (reallocates only when the size changes).
  void assign(std::size_t n, const T& value) {
    if (n != size_) {
      T* fresh = allocate(n);
      release(data_, size_);
      data_ = fresh;
      size_ = n;
    }
    for (std::size_t i = 0; i < n; ++i) data_[i] = value;
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
  static T* allocate(std::size_t n) {
    if (n == 0) return nullptr;
    // T may itself be a pointer (a buffer of row pointers): n elements of sizeof(T) each is what is meant.
    T* p = static_cast<T*>(
        ::operator new[](n * sizeof(T), std::align_val_t{kAlignment}));  // NOLINT(bugprone-sizeof-expression)
    for (std::size_t i = 0; i < n; ++i) new (p + i) T();
    return p;
  }
  static void release(T* p, std::size_t n) {
    if (p == nullptr) return;
    if (!std::is_trivially_destructible<T>::value)
      for (std::size_t i = 0; i < n; ++i) p[i].~T();
    ::operator delete[](p, std::align_val_t{kAlignment});
  }

  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace detail
ALIBI_NAMESPACE_END
#endif  // per-target guard

#pragma once
// A bounded single-producer, single-consumer ring: the reader thread hands
// decoded packets to one worker without a lock. Writes are published in
// batches (one release store per batch, not per packet); an empty consumer
// and a full producer sleep on the index they wait for (C++20 atomic wait,
// a futex underneath) after a short spin.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>

namespace flowfold {

template <typename T>
class SpscRing {
 public:
  explicit SpscRing(size_t capacity_pow2) : mask_(capacity_pow2 - 1), slots_(new T[capacity_pow2]) {}

  // ---- producer
  /// The slot to fill next; waits while the ring is full.
  T& claim() {
    if (write_ - cached_tail_ > mask_) {
      cached_tail_ = tail_.load(std::memory_order_acquire);
      for (int spins = 0; write_ - cached_tail_ > mask_; ++spins) {
        publish();  // the consumer may be waiting for what we hold back
        if (spins < 64) {
          std::this_thread::yield();
        } else {
          tail_.wait(cached_tail_, std::memory_order_acquire);
        }
        cached_tail_ = tail_.load(std::memory_order_acquire);
      }
    }
    return slots_[write_ & mask_];
  }
  /// The claimed slot is complete; it becomes visible at the next publish().
  void commit() {
    ++write_;
    if (write_ - published_ >= kPublishBatch) publish();
  }
  void publish() {
    if (published_ == write_) return;
    published_ = write_;
    head_.store(write_, std::memory_order_release);
    head_.notify_one();
  }

  // ---- consumer
  /// Number of items ready (waits until there is at least one).
  size_t waitAvailable() {
    uint64_t head = head_.load(std::memory_order_acquire);
    for (int spins = 0; head == read_; ++spins) {
      if (spins < 64) {
        std::this_thread::yield();
      } else {
        head_.wait(head, std::memory_order_acquire);
      }
      head = head_.load(std::memory_order_acquire);
    }
    return static_cast<size_t>(head - read_);
  }
  T& at(size_t i) { return slots_[(read_ + i) & mask_]; }
  void release(size_t n) {
    read_ += n;
    tail_.store(read_, std::memory_order_release);
    tail_.notify_one();
  }

 private:
  static constexpr uint64_t kPublishBatch = 32;
  const uint64_t mask_;
  std::unique_ptr<T[]> slots_;
  alignas(64) std::atomic<uint64_t> head_{0};  // published by the producer
  alignas(64) std::atomic<uint64_t> tail_{0};  // released by the consumer
  alignas(64) uint64_t write_ = 0;             // producer only
  uint64_t published_ = 0;
  uint64_t cached_tail_ = 0;
  alignas(64) uint64_t read_ = 0;              // consumer only
};

}  // namespace flowfold

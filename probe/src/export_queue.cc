#include "flowfold/probe/export_queue.h"

namespace flowfold {

bool ExportQueue::push(ExportBatch&& batch, bool wait) {
  std::unique_lock lock(mu_);
  if (q_.size() >= max_batches_) {
    if (!wait && !batch.flush && !batch.replace) {
      ++dropped_batches_;
      dropped_records_ += batch.records.size();
      return false;
    }
    ++blocked_pushes_;
    // Wait until the queue is half empty, not for the first free place: the
    // reader then runs for several batches between waits instead of one, and
    // each wait (sleep, wake-up, caches refilled by the flow table) costs
    // more than the batch it lets through (a capture file's reader, paced
    // to a collector, waits often).
    not_full_.wait(lock, [&] { return q_.size() <= resume_at_ || closed_; });
  }
  q_.push_back(std::move(batch));
  lock.unlock();
  not_empty_.notify_one();
  return true;
}

bool ExportQueue::tryPush(ExportBatch& batch) {
  std::unique_lock lock(mu_);
  if (q_.size() >= max_batches_) return false;
  q_.push_back(std::move(batch));
  lock.unlock();
  not_empty_.notify_one();
  return true;
}

bool ExportQueue::pushWaitingUntil(ExportBatch&& batch, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  if (q_.size() >= max_batches_) {
    ++blocked_pushes_;
    // Here the first free place will do: a stop has nothing else to do.
    ++deadline_waiters_;
    const bool room = not_full_.wait_until(lock, deadline, [&] { return q_.size() < max_batches_ || closed_; });
    --deadline_waiters_;
    if (!room) {
      ++dropped_batches_;
      dropped_records_ += batch.records.size();
      return false;
    }
  }
  q_.push_back(std::move(batch));
  lock.unlock();
  not_empty_.notify_one();
  return true;
}

void ExportQueue::countDropped(uint64_t records) {
  std::lock_guard lock(mu_);
  dropped_records_ += records;
}

bool ExportQueue::pop(ExportBatch& out) {
  std::unique_lock lock(mu_);
  not_empty_.wait(lock, [&] { return !q_.empty() || closed_; });
  if (q_.empty()) return false;
  out = std::move(q_.front());
  q_.pop_front();
  // A waiting pusher may go on now: the file reader at half (resume_at_), a
  // stop's flush at the first free place.
  const bool resume = q_.size() == resume_at_ || (deadline_waiters_ != 0 && q_.size() == max_batches_ - 1);
  lock.unlock();
  if (resume) not_full_.notify_all();
  return true;
}

void ExportQueue::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  not_empty_.notify_all();
  not_full_.notify_all();
}

void ExportQueue::recycle(std::vector<FlowRecord>&& records) {
  records.clear();
  std::lock_guard lock(mu_);
  // As many as can be in flight, and one being filled: more would only hold memory.
  if (spare_.size() <= max_batches_) spare_.push_back(std::move(records));
}

std::vector<FlowRecord> ExportQueue::spareRecords() {
  std::lock_guard lock(mu_);
  if (spare_.empty()) return {};
  std::vector<FlowRecord> records = std::move(spare_.back());
  spare_.pop_back();
  return records;
}

uint64_t ExportQueue::droppedBatches() const {
  std::lock_guard lock(mu_);
  return dropped_batches_;
}
uint64_t ExportQueue::droppedRecords() const {
  std::lock_guard lock(mu_);
  return dropped_records_;
}
uint64_t ExportQueue::blockedPushes() const {
  std::lock_guard lock(mu_);
  return blocked_pushes_;
}

}  // namespace flowfold

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
    not_full_.wait(lock, [&] { return q_.size() < max_batches_ || closed_; });
  }
  q_.push_back(std::move(batch));
  lock.unlock();
  not_empty_.notify_one();
  return true;
}

bool ExportQueue::pop(ExportBatch& out) {
  std::unique_lock lock(mu_);
  not_empty_.wait(lock, [&] { return !q_.empty() || closed_; });
  if (q_.empty()) return false;
  out = std::move(q_.front());
  q_.pop_front();
  lock.unlock();
  not_full_.notify_one();
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

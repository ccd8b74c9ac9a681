#include "flowfold/probe/export_queue.h"

#include <gtest/gtest.h>

#include <thread>

namespace flowfold {
namespace {

ExportBatch batchOf(size_t n, uint64_t now) {
  ExportBatch b;
  b.records.resize(n);
  b.now_ms = now;
  return b;
}

TEST(ExportQueue, DeliversBatchesInOrder) {
  ExportQueue q(4);
  EXPECT_TRUE(q.push(batchOf(1, 10), true));
  EXPECT_TRUE(q.push(batchOf(2, 20), true));
  ExportBatch out;
  ASSERT_TRUE(q.pop(out));
  EXPECT_EQ(out.now_ms, 10u);
  ASSERT_TRUE(q.pop(out));
  EXPECT_EQ(out.records.size(), 2u);
  q.close();
  EXPECT_FALSE(q.pop(out));
}

TEST(ExportQueue, FullQueueDropsAndCountsWhenNotWaiting) {
  ExportQueue q(2);
  EXPECT_TRUE(q.push(batchOf(5, 1), false));
  EXPECT_TRUE(q.push(batchOf(5, 2), false));
  EXPECT_FALSE(q.push(batchOf(7, 3), false));
  EXPECT_EQ(q.droppedBatches(), 1u);
  EXPECT_EQ(q.droppedRecords(), 7u);
}

TEST(ExportQueue, FullQueueMakesAWaitingProducerWaitAndLosesNothing) {
  ExportQueue q(1);
  uint64_t received = 0;
  std::thread consumer([&] {
    ExportBatch b;
    while (q.pop(b)) received += b.records.size();
  });
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(q.push(batchOf(3, static_cast<uint64_t>(i)), true));
  q.close();
  consumer.join();
  EXPECT_EQ(received, 3000u);
  EXPECT_EQ(q.droppedRecords(), 0u);
}

}  // namespace
}  // namespace flowfold

#include "flowfold/recorder/recorder.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "flowfold/log.h"
#include "flowfold/recorder/address_filter.h"
#include "flowfold/recorder/file_io.h"
#include "flowfold/recorder/pcap_segment.h"

namespace flowfold::recorder {

namespace {

// Large writes: the writer thread writes a whole buffer at once.
constexpr size_t kChunkSize = size_t{4} << 20;
constexpr size_t kAlignment = 4096;
// Two buffers at least per segment, so that small test segments rotate.
size_t chunkSizeFor(uint64_t segment_size) {
  return std::min<size_t>(kChunkSize, std::max<uint64_t>(segment_size / 2, 64 << 10));
}

// A partial buffer goes to the disk after this long.
constexpr uint64_t kHandOffMs = 1000;

}  // namespace

Recorder::Recorder(SegmentRing& ring, const RecorderOptions& options, const std::string& stream, uint32_t linktype,
                   bool wait_when_full)
    : ring_(ring),
      stream_(stream),
      linktype_(linktype),
      snaplen_(options.snaplen),
      segment_size_(options.segment_size),
      chunk_size_(chunkSizeFor(options.segment_size)),
      max_chunks_(std::max<size_t>(2, options.buffer_size / chunk_size_)),
      wait_when_full_(wait_when_full),
      index_(linktype, options.tunnels) {
  writer_ = std::thread([this] { writerLoop(); });
  pthread_setname_np(writer_.native_handle(), "ff-recorder");
}

Recorder::~Recorder() { finish(); }

void Recorder::write(Chunk& c, uint64_t ts_ns, uint32_t caplen, uint32_t wirelen, const uint8_t* data) {
  uint8_t* out = c.data.get() + c.used;
  writePcapRecordHeader(out, ts_ns, caplen, wirelen);
  std::memcpy(out + kPcapRecordHeaderSize, data, caplen);
  c.used += kPcapRecordHeaderSize + caplen;
  if (c.packets++ == 0) c.first_ts_ns = ts_ns;
  c.last_ts_ns = ts_ns;
}

bool Recorder::nextChunk() {
  if (current_ != nullptr && current_->used > 0) handOff();
  if (failed_.load(std::memory_order_relaxed)) return false;
  std::unique_lock lock(mu_);
  if (current_ == nullptr) {
    if (free_.empty() && all_.size() < max_chunks_) {
      auto c = std::make_unique<Chunk>();
      c->data = {static_cast<uint8_t*>(std::aligned_alloc(kAlignment, chunk_size_)), std::free};
      if (!c->data) return false;
      free_.push_back(c.get());
      all_.push_back(std::move(c));
    }
    if (free_.empty() && wait_when_full_) freed_.wait(lock, [&] { return !free_.empty() || failed_.load(); });
    if (free_.empty()) return false;
    current_ = free_.back();
    free_.pop_back();
  }
  current_->used = 0;
  current_->packets = 0;
  current_->handed_ms = steady_now_ms_;
  if (tagging_) {
    if (!current_->tags) current_->tags = std::make_unique<uint64_t[]>(maxFramesPerChunk());
    tags_ = FlowTags{current_->tags.get(), 0, static_cast<uint32_t>(maxFramesPerChunk())};
  }
  return true;
}

FlowTags* Recorder::enableFlowTags() {
  tagging_ = true;
  return &tags_;
}

void Recorder::handOff() {
  if (current_ == nullptr) return;
  current_->tagged = tags_.count;
  tags_ = FlowTags{};  // tags of frames not in a chunk (dropped) go nowhere
  {
    std::lock_guard lock(mu_);
    queue_.push_back(current_);
  }
  current_ = nullptr;
  cv_.notify_one();
}

void Recorder::handOffIfOld(uint64_t steady_ms) {
  steady_now_ms_ = steady_ms;
  if (current_ != nullptr && current_->used > 0 && steady_ms >= current_->handed_ms + kHandOffMs) handOff();
}

void Recorder::finish() {
  if (!writer_.joinable()) return;
  if (current_ != nullptr && current_->used > 0) handOff();
  {
    std::lock_guard lock(mu_);
    finishing_ = true;
  }
  cv_.notify_one();
  writer_.join();
}

RecorderCounters Recorder::counters() const {
  RecorderCounters c;
  c.recorder_packets = packets_.load(std::memory_order_relaxed);
  c.recorder_bytes = bytes_.load(std::memory_order_relaxed);
  c.recorder_dropped = dropped_.load(std::memory_order_relaxed);
  c.recorder_segments = segments_.load(std::memory_order_relaxed);
  return c;
}

void Recorder::writerLoop() {
  for (;;) {
    Chunk* c = nullptr;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !queue_.empty() || finishing_; });
      if (queue_.empty()) break;  // finishing, and everything written
      c = queue_.front();
      queue_.pop_front();
    }
    if (!failed_.load(std::memory_order_relaxed)) {
      writeChunk(*c);
    } else {
      dropped_.fetch_add(c->packets, std::memory_order_relaxed);
    }
    {
      std::lock_guard lock(mu_);
      free_.push_back(c);
    }
    freed_.notify_one();
  }
  closeSegment();
}

void Recorder::writeChunk(Chunk& c) {
  try {
    if (!out_ || segment_bytes_ + c.used > segment_size_) {
      closeSegment();
      openSegment(c.first_ts_ns);
    }
  } catch (const RecorderError& e) {
    dropped_.fetch_add(c.packets, std::memory_order_relaxed);
    fail(e.what());
    return;
  }
  // The disk writes while the block is indexed; the index's entry for it
  // follows once the segment holds it.
  std::string error;
  out_->startAppend(c.data.get(), c.used);
  // The pipeline's flow tags when it gave one per frame, else the keys.
  const uint64_t* tags = c.tags && c.tagged == c.packets ? c.tags.get() : nullptr;
  if (!index_.addBlock(c.data.get(), c.used, segment_bytes_, tags, error)) indexFailed(error);
  if (!out_->finishAppend(error)) {
    // A write cut short (a full disk) would leave half a packet: the
    // segment goes back to its last whole buffer, readable as it was.
    if (!out_->cutBack(segment_bytes_))
      error += std::string("; trimming it back failed too: ") + std::strerror(errno);
    dropped_.fetch_add(c.packets, std::memory_order_relaxed);
    fail("writing segment " + segment_.path + " failed: " + error);
    return;
  }
  if (!index_.commitBlock(error)) indexFailed(error);
  segment_bytes_ += c.used;
  packets_.fetch_add(c.packets, std::memory_order_relaxed);
  bytes_.fetch_add(c.used, std::memory_order_relaxed);
  ring_.grew(segment_, segment_bytes_ + index_.bytes());
  ring_.enforceBounds(c.last_ts_ns / 1'000'000);
}

void Recorder::openSegment(uint64_t first_ts_ns) {
  out_ = std::make_unique<SegmentWriter>(ring_.openNext(stream_, first_ts_ns / 1'000'000, segment_), segment_.path);
  uint8_t header[kPcapFileHeaderSize];
  writePcapFileHeader(header, snaplen_, linktype_);
  std::string error;
  if (!out_->append(header, sizeof header, error)) {
    out_.reset();
    throw RecorderError("recorder: writing segment " + segment_.path + " failed: " + error);
  }
  segment_bytes_ = sizeof header;
  segments_.fetch_add(1, std::memory_order_relaxed);
  if (!index_.open(indexPathOf(segment_.path), error)) indexFailed(error);
}

void Recorder::closeSegment() {
  if (!out_) return;
  out_.reset();
  // A segment indexed whole gets its address filter (address_filter.h);
  // without one, queries read its index, as for the segment being written.
  uint64_t filter_bytes = 0;
  if (index_.isOpen()) {
    std::string error;
    filter_bytes = index_.writeAddressFilter(addressFilterPathOf(segment_.path), segment_bytes_, error);
    if (filter_bytes == 0 && !filter_warned_) {
      filter_warned_ = true;
      logWarn("recorder: %s; queries read this segment's index instead", error.c_str());
    }
  }
  ring_.closed(segment_, segment_bytes_ + index_.bytes() + filter_bytes);
  index_.close();
}

// Without its index a segment is still whole: extraction reads it through.
void Recorder::indexFailed(const std::string& error) {
  index_.close();
  if (index_warned_) return;
  index_warned_ = true;
  logWarn("recorder: %s; segments go on being written, unindexed (extraction reads them through)", error.c_str());
}

void Recorder::fail(const std::string& what) {
  if (failed_.exchange(true)) return;
  closeSegment();
  logError("recorder: %s; recording stopped (flows go on; packets from now on are counted in recorder_dropped). "
           "Free space or fix the disk, then restart flowfold to record again",
           what.c_str());
  freed_.notify_all();
}

}  // namespace flowfold::recorder

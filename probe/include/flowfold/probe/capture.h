#pragma once
// Packet sources on libpcap. libpcap stays behind this header.

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "flowfold/probe/packet_sink.h"

namespace flowfold {

/// The capture could not be opened or is not a capture (exit status kExitInput).
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Reads a pcap or pcapng file (format by content) or standard input ("-").
class PcapFileSource {
 public:
  explicit PcapFileSource(const std::string& path, const std::string& bpf_filter = "");
  ~PcapFileSource();
  PcapFileSource(const PcapFileSource&) = delete;
  PcapFileSource& operator=(const PcapFileSource&) = delete;

  int datalink() const;
  std::string datalinkName() const;

  enum class Result { kMore, kEnd, kTruncated };
  /// Feeds up to max_packets packets to the sink, then ends the burst
  /// (onBurstEnd()). Defined in capture.cc for the two pipeline shapes
  /// (Pipeline, ShardedPipeline), so that libpcap stays out of this header.
  template <PacketSink Sink>
  Result dispatch(Sink& sink, int max_packets);
  /// libpcap's message when dispatch() returned kTruncated.
  const std::string& error() const { return error_; }
  uint64_t packetsRead() const { return packets_; }
  /// Bytes of the file consumed so far, and its size (0 when unknown: stdin, a pipe).
  uint64_t bytesRead() const;
  uint64_t fileSize() const { return file_size_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string error_;
  uint64_t packets_ = 0;
  uint64_t file_size_ = 0;
};

}  // namespace flowfold

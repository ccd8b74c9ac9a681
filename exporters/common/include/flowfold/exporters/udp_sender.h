#pragma once
// Sends batches of datagrams over a connected UDP socket with as few trips
// through the kernel as it can, for the IPFIX and NetFlow v9 exporters.
//
// Why: each datagram sent by itself costs a system call and a full pass
// through the network stack; on loopback the sender also pays for the
// collector's receive path: a large share of the probe's CPU when a capture
// file's records go to nfcapd (bench/PROFILE.md). Two kernel features remove
// most of it:
//  - UDP generic segmentation offload (UDP_SEGMENT, Linux 4.18): a run of
//    datagrams of one size (every full message of a template is) goes down
//    the stack as one buffer and is cut into datagrams at the device, or by
//    the NIC. The last datagram of a run may be shorter.
//  - sendmmsg(): the runs of one batch go in one system call.
// The collector sees exactly the datagrams it saw before, in the same order.
// Where segmentation is refused (an old kernel, a device without checksum
// offload, datagrams larger than the path MTU, which must be fragmented), the
// sender says so once and sends one datagram per trip from then on.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <sys/socket.h>
#include <sys/uio.h>

#include "flowfold/exporters/local_collector.h"
#include "flowfold/exporters/pacer.h"

namespace flowfold {

/// True when a connected UDP socket's own address is its peer's: connecting
/// to a loopback port nothing is bound to can draw that very port as the
/// socket's ephemeral one, and the socket then sends to itself, so the local
/// collector check sees a listener and every datagram "succeeds". Connect a
/// new socket instead (the kernel draws another port).
bool connectedToItself(int fd);

class UdpSender {
 public:
  /// fd: a connected UDP socket, not owned. name: the collector, for the one
  /// message about segmentation. max_datagrams_per_second: pacing, 0 = none.
  UdpSender(int fd, std::string name, uint64_t max_datagrams_per_second);

  /// Sends the datagrams in order. errors[i] is 0 when datagram i went out
  /// and otherwise the errno that lost it (errors.size() == datagrams.size()).
  /// With pacing, waits for the pacer; what is ready goes out before a wait.
  /// An error loses the datagrams of that one trip (a segmented run, or a
  /// single datagram); the rest are still sent.
  void send(std::span<const std::span<const uint8_t>> datagrams, std::span<int> errors);

  bool segmentationOffload() const { return segment_; }
  /// One datagram per trip from now on (tests; and after the kernel refused).
  void disableSegmentationOffload() { segment_ = false; }
  /// System calls made (sendmmsg or send), and datagrams that went out in
  /// segmented runs of two or more: for tests and benchmarks.
  uint64_t trips() const { return trips_; }
  uint64_t datagramsSegmented() const { return segmented_; }

  /// For a collector on this host: the datagrams its socket dropped since
  /// this sender was made (see local_collector.h), as of the last look, which
  /// send() takes at most once a second and checkCollector() at once. The
  /// first drop seen is logged once, with what to do. 0 for a remote collector.
  uint64_t collectorDrops() const { return collector_ ? collector_->total() : 0; }
  void checkCollector();

  /// Errors from the network that the kernel reported for this socket: an
  /// ICMP port (or host) unreachable that the collector's host sent for an
  /// earlier datagram, reported on a later send (which is then not sent, and
  /// shows in errors[]), swallowed by sendmmsg() after the messages before it
  /// (it returns early), or still pending at checkPendingRefusal(). Each one
  /// means at least one datagram that had left the host was lost; which one
  /// a UDP sender is not told, and the kernel rate-limits ICMP, so there may
  /// be more.
  uint64_t refusals() const { return refusals_; }
  /// At a flush: takes a refusal still pending on the socket. For a remote
  /// collector it waits up to kRefusalWaitMs for one to arrive (a round trip);
  /// on loopback the collector's host has answered before send() returned.
  void checkPendingRefusal();
  static constexpr int kRefusalWaitMs = 200;

  // Largest run: the kernel's UDP_MAX_SEGMENTS, and one IP packet (64 KiB)
  // before segmentation, with room for headers.
  static constexpr size_t kMaxSegments = 64;
  static constexpr size_t kMaxRunBytes = 65000;

 private:
  struct Run {
    size_t first, count, bytes;
  };
  void sendReady(std::span<const std::span<const uint8_t>> datagrams, size_t begin, size_t end,
                 std::span<int> errors);
  void sendRuns(std::span<const std::span<const uint8_t>> datagrams, std::span<int> errors);
  void sendOneByOne(std::span<const std::span<const uint8_t>> datagrams, const Run& run,
                    std::span<int> errors);
  /// For a collector on this host: false when no socket receives for it,
  /// which is said once until one does.
  bool localCollectorListens();
  void noteError(int err);

  int fd_;
  std::string name_;
  Pacer pacer_;
  std::unique_ptr<LocalCollectorDrops> collector_;  // null for a remote collector
  std::chrono::steady_clock::time_point next_collector_check_{};
  // A collector on this host is checked again before the next send (it
  // refused a datagram, or nobody listened at the last check).
  bool recheck_collector_ = true;
  bool said_nobody_listens_ = false;
  uint64_t refusals_ = 0;
  bool sent_since_refusal_check_ = false;
  bool segment_ = true;
  uint64_t trips_ = 0;
  uint64_t segmented_ = 0;
  // Reused between calls.
  std::vector<Run> runs_;
  std::vector<iovec> iov_;
  std::vector<mmsghdr> msgs_;
  std::vector<char> control_;
};

}  // namespace flowfold

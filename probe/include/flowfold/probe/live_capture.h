#pragma once
// Live capture from a network interface on libpcap (pcap_create +
// pcap_set_* + pcap_activate). libpcap stays behind this header.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "flowfold/probe/capture.h"  // InputError
#include "flowfold/probe/packet_sink.h"

namespace flowfold {

/// The named interface does not exist; the message lists those that do.
class NoSuchInterfaceError : public InputError {
 public:
  using InputError::InputError;
};

/// Opening a capture needs CAP_NET_RAW and CAP_NET_ADMIN (or root).
class CapturePermissionError : public InputError {
 public:
  using InputError::InputError;
};

/// The BPF filter does not compile; the message is libpcap's.
class CaptureFilterError : public InputError {
 public:
  using InputError::InputError;
};

/// The interface exists but is administratively down.
class InterfaceDownError : public InputError {
 public:
  using InputError::InputError;
};

/// The PACKET_FANOUT group that the captures of one interface share, within
/// this process. The first member asks the kernel for an id that no group in
/// the network namespace has (PACKET_FANOUT_FLAG_UNIQUEID); the others join
/// that id while a member still holds it. So no id is ever chosen by a guess
/// (two interfaces, or two processes, could pick the same one and share
/// their packets or fail), and no other process's group is ever joined.
class FanoutGroup {
 public:
  /// Joins the packet socket `fd` (bound to `interface`). Throws InputError.
  void join(int fd, const std::string& interface);
  /// A member's socket has been closed.
  void left();
  /// The kernel's id of the group; 0 while it has no member.
  uint16_t id() const;

 private:
  mutable std::mutex mu_;
  uint16_t id_ = 0;
  int members_ = 0;
};

struct LiveCaptureOptions {
  /// Empty: the first interface from pcap_findalldevs that is up, running,
  /// not loopback and has an IPv4 or IPv6 address (the choice is logged).
  std::string interface;
  int snaplen = 256;
  bool promiscuous = true;
  /// Kernel ring size: decides how large a burst is absorbed without drops.
  int buffer_size = 64 * 1024 * 1024;
  /// With TPACKET_V3 a partly filled block is only handed over when this
  /// expires; without it a quiet link's packets stay in the kernel.
  int timeout_ms = 100;
  std::string filter;
  /// Ask for nanosecond timestamps (the packet recorder keeps them whole).
  bool nanoseconds = false;
  /// Set: join this PACKET_FANOUT group (hash mode), so that several
  /// captures of the interface each get a share of the flows. The captures
  /// of one interface share one FanoutGroup object.
  std::shared_ptr<FanoutGroup> fanout;
};

/// Kernel counters since the source was opened, across reopen() and across
/// the wrap of libpcap's 32-bit counters (as long as stats() is called at
/// least once per 2^32 packets).
struct LiveCaptureStats {
  uint64_t captured = 0;           ///< ps_recv: packets that passed the filter
  uint64_t capture_dropped = 0;    ///< ps_drop: dropped because the ring was full
  uint64_t interface_dropped = 0;  ///< ps_ifdrop: dropped by the interface/driver
};

/// Reads packets from a network interface (TPACKET_V3 ring, non-blocking
/// handle, bounded wait in dispatch()).
///
/// The handle is an open packet socket: it keeps working after the process
/// drops root (dropPrivileges()), also across the interface going down and
/// up again. Only a new handle, after the interface disappeared, needs
/// CAP_NET_RAW, which a plain setuid drops.
///
/// Loopback: the kernel hands the socket every packet twice (sent and
/// received); libpcap drops the sent copy, but stats().captured counts both.
class PcapLiveSource {
 public:
  /// Throws NoSuchInterfaceError, CapturePermissionError, CaptureFilterError,
  /// InterfaceDownError or InputError, each with a one-line message. A
  /// refused promiscuous mode is logged as a warning and capture goes on.
  explicit PcapLiveSource(const LiveCaptureOptions& options);
  ~PcapLiveSource();
  PcapLiveSource(const PcapLiveSource&) = delete;
  PcapLiveSource& operator=(const PcapLiveSource&) = delete;

  enum class Result {
    kPackets,        ///< at least one packet was delivered
    kIdle,           ///< the read timeout expired with nothing to deliver
    kStopped,        ///< breakLoop() was called
    kInterfaceDown,  ///< the interface is down or gone: error() says which; call reopen() until true
  };

  /// Feeds up to max_packets packets (-1: one kernel block's worth) to the
  /// pipeline, then ends the burst (onBurstEnd()), exactly as PcapFileSource does. Waits at most
  /// timeout_ms for packets (kIdle on a silent link, so the caller can move
  /// its clock). Never throws.
  /// Defined in live_capture.cc for Pipeline, the shape a live capture feeds.
  template <PacketSink Sink>
  Result dispatch(Sink& sink, int max_packets);

  using PacketCallback =
      std::function<void(const uint8_t* data, uint32_t caplen, uint32_t wirelen, uint64_t ts_ms)>;
  /// Same, to a callback (tests, tools). An exception thrown by the callback
  /// ends the dispatch and propagates out of it.
  Result dispatch(const PacketCallback& callback, int max_packets);

  /// After kInterfaceDown. Returns false (message in error()) until capture
  /// can go on; the caller retries with backoff and keeps its cache.
  /// An interface that was only down keeps its socket (the kernel re-attaches
  /// it when the interface is up again): no privileges needed. One that
  /// disappeared gets a new handle with the same options (and the same name,
  /// also when it was chosen by default); that needs CAP_NET_RAW, so after
  /// dropPrivileges() without keeping it this keeps failing with the
  /// permission message. Counters carry over; ifindex() and datalink() may
  /// differ afterwards (a re-created interface).
  bool reopen();

  /// Makes a dispatch() in progress, and every later one, return kStopped.
  /// Safe from a signal handler, and from another thread as long as that
  /// does not race with reopen().
  void breakLoop();

  /// Message of the last kInterfaceDown or failed reopen().
  const std::string& error() const { return error_; }

  LiveCaptureStats stats();
  uint64_t packetsRead() const { return packets_; }

  int datalink() const;
  std::string datalinkName() const;
  const std::string& name() const { return name_; }
  /// if_nametoindex() of the interface (ingressInterface, IE 10); 0 for
  /// pseudo-interfaces such as "any".
  uint32_t ifindex() const { return ifindex_; }
  /// False when the interface refused promiscuous mode.
  bool promiscuous() const { return promiscuous_; }
  /// For a caller multiplexing several sources with poll()/epoll
  /// (pcap_get_selectable_fd, non-blocking); -1 while the handle is closed.
  /// With TPACKET_V3 it becomes readable when a block is handed over: when
  /// it is full or timeout_ms after its first packet. dispatch() does its
  /// own bounded wait, so it is never needed for a single source.
  int selectableFd() const;

  /// Names of every interface libpcap can capture on (pcap_findalldevs).
  static std::vector<std::string> interfaceNames();
  /// The interface chosen when LiveCaptureOptions::interface is empty.
  /// Throws InputError when there is none.
  static std::string defaultInterface();

 private:
  struct Impl;
  template <class Sink>
  Result dispatchTo(Sink& sink, int max_packets);
  void open();
  void close();
  void accumulateStats();
  bool interfaceUp() const;

  std::unique_ptr<Impl> impl_;
  LiveCaptureOptions options_;
  std::string name_;
  std::string error_;
  uint32_t ifindex_ = 0;
  bool promiscuous_ = false;
  bool nanos_ = false;  // the handle's timestamps are in nanoseconds
  uint64_t packets_ = 0;
  LiveCaptureStats total_;
};

}  // namespace flowfold

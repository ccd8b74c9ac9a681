#pragma once
// Live capture from a network interface on libpcap (pcap_create +
// pcap_set_* + pcap_activate). libpcap stays behind this header.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "flowfold/probe/capture.h"  // InputError

namespace flowfold {

class Pipeline;

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
};

/// Kernel counters since the source was opened, across reopen() and across
/// the wrap of libpcap's 32-bit counters (as long as stats() is called at
/// least once per 2^32 packets).
struct LiveCaptureStats {
  uint64_t received = 0;   ///< ps_recv: packets that passed the filter
  uint64_t dropped = 0;    ///< ps_drop: dropped because the ring was full
  uint64_t if_dropped = 0; ///< ps_ifdrop: dropped by the interface/driver
};

/// Reads packets from a network interface.
///
/// The handle is an open packet socket: it keeps working after the process
/// drops root (dropPrivileges()); only opening one again (reopen()) needs
/// CAP_NET_RAW, which is gone after a plain setuid.
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
    kInterfaceDown,  ///< the handle failed (interface down or gone): error() says why; call reopen()
  };

  /// Feeds up to max_packets packets (-1: one kernel block's worth) to the
  /// pipeline, then drains it, exactly as PcapFileSource does. Blocks at most
  /// about timeout_ms. Never throws.
  Result dispatch(Pipeline& pipeline, int max_packets);

  using PacketCallback =
      std::function<void(const uint8_t* data, uint32_t caplen, uint32_t wirelen, uint64_t ts_ms)>;
  /// Same, to a callback (tests, tools).
  Result dispatch(const PacketCallback& callback, int max_packets);

  /// After kInterfaceDown: closes the handle and opens the interface again
  /// with the same options. Returns false (message in error()) while it
  /// cannot be opened; the caller retries with backoff. Counters carry over.
  /// ifindex() and datalink() may differ afterwards (a re-created interface).
  /// Without CAP_NET_RAW (after dropPrivileges() without keeping it) this
  /// keeps failing with a permission message.
  bool reopen();

  /// Makes a dispatch() in progress (or the next one) return kStopped.
  /// Safe from a signal handler or another thread.
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
  /// For poll()/epoll (pcap_get_selectable_fd); -1 while the handle is
  /// closed. With TPACKET_V3 it becomes readable when a block is handed
  /// over: when it is full or timeout_ms after its first packet.
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

  std::unique_ptr<Impl> impl_;
  LiveCaptureOptions options_;
  std::string name_;
  std::string error_;
  uint32_t ifindex_ = 0;
  bool promiscuous_ = false;
  uint64_t packets_ = 0;
  LiveCaptureStats total_;
};

}  // namespace flowfold

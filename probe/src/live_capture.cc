#include "flowfold/probe/live_capture.h"

#include <net/if.h>
#include <pcap/pcap.h>
#include <linux/if_packet.h>
#include <sys/socket.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <exception>

#include "flowfold/log.h"
#include "flowfold/probe/pipeline.h"
#include "flowfold/probe/recording_sink.h"

namespace flowfold {

namespace {

struct PcapCloser {
  void operator()(pcap_t* p) const { pcap_close(p); }
};
using PcapHandle = std::unique_ptr<pcap_t, PcapCloser>;

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out.empty() ? "none found" : out;
}

// libpcap leaves the error buffer empty for some status codes.
std::string pcapMessage(pcap_t* p, int status) {
  std::string msg = pcap_geterr(p);
  return msg.empty() ? pcap_statustostr(status) : msg;
}

bool hasIpAddress(const pcap_if_t* dev) {
  for (const pcap_addr_t* a = dev->addresses; a; a = a->next) {
    if (a->addr && (a->addr->sa_family == AF_INET || a->addr->sa_family == AF_INET6)) return true;
  }
  return false;
}

template <class Fn>
void forEachDevice(Fn fn) {
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_if_t* devs = nullptr;
  if (pcap_findalldevs(&devs, err) != 0) throw InputError(std::string("cannot list interfaces: ") + err);
  for (const pcap_if_t* d = devs; d; d = d->next) fn(d);
  pcap_freealldevs(devs);
}

// Milliseconds since the epoch; before 1970 cannot be expressed in
// flowStartMilliseconds. nanos: tv_usec holds nanoseconds.
inline uint64_t toMs(const timeval& ts, bool nanos) {
  const uint64_t secs = ts.tv_sec > 0 ? static_cast<uint64_t>(ts.tv_sec) : 0;
  const uint64_t frac = ts.tv_usec > 0 ? static_cast<uint64_t>(ts.tv_usec) : 0;
  return secs * 1000 + (nanos ? frac / 1'000'000 : frac / 1000);
}

// What a dispatch hands libpcap's callback: the sink, and whether the
// handle's timestamps are in nanoseconds (asked for when recording).
template <class Sink>
struct SinkContext {
  Sink* sink;
  bool nanos;
};

template <PacketSink Sink>
void toSink(u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
  const auto* ctx = reinterpret_cast<const SinkContext<Sink>*>(user);
  // Timestamps before 1970 cannot be expressed in flowStartMilliseconds.
  const uint64_t secs = h->ts.tv_sec > 0 ? static_cast<uint64_t>(h->ts.tv_sec) : 0;
  const uint64_t frac = h->ts.tv_usec > 0 ? static_cast<uint64_t>(h->ts.tv_usec) : 0;
  if constexpr (requires { ctx->sink->onFrame(bytes, h->caplen, h->len, uint64_t{0}); }) {
    ctx->sink->onFrame(bytes, h->caplen, h->len, secs * 1'000'000'000 + (ctx->nanos ? frac : frac * 1000));
  } else {
    ctx->sink->onPacket(bytes, h->caplen, h->len, toMs(h->ts, ctx->nanos));
  }
}

// An exception must not unwind through libpcap's C frames: it is parked,
// the loop broken, and it is rethrown once pcap_dispatch() has returned.
struct CallbackContext {
  const PcapLiveSource::PacketCallback* callback;
  pcap_t* handle;
  std::exception_ptr error;
  bool nanos = false;
};

void toCallback(u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
  auto* ctx = reinterpret_cast<CallbackContext*>(user);
  if (ctx->error) return;
  try {
    (*ctx->callback)(bytes, h->caplen, h->len, toMs(h->ts, ctx->nanos));
  } catch (...) {
    ctx->error = std::current_exception();
    pcap_breakloop(ctx->handle);
  }
}

}  // namespace

struct PcapLiveSource::Impl {
  Impl() : wake_fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Impl() {
    if (wake_fd >= 0) ::close(wake_fd);
  }
  PcapHandle handle;
  bool in_fanout = false;  // handle is a member of options_.fanout
  int pcap_fd = -1;
  int datalink = -1;
  // pcap_dispatch() failed ("The interface disappeared"): only a new handle helps.
  bool failed = false;
  std::atomic<bool> stop{false};
  // breakLoop() wakes the poll() in dispatch() through this.
  int wake_fd;
  // Raw libpcap counters at the last stats() call (32-bit, they wrap).
  uint32_t last_recv = 0;
  uint32_t last_drop = 0;
  uint32_t last_ifdrop = 0;
};

std::vector<std::string> PcapLiveSource::interfaceNames() {
  std::vector<std::string> names;
  try {
    forEachDevice([&](const pcap_if_t* d) { names.emplace_back(d->name); });
  } catch (const InputError&) {
    // Only used to enrich another error message.
  }
  return names;
}

std::string PcapLiveSource::defaultInterface() {
  std::string chosen;
  forEachDevice([&](const pcap_if_t* d) {
    const bpf_u_int32 f = d->flags;
    if (chosen.empty() && (f & PCAP_IF_UP) && (f & PCAP_IF_RUNNING) && !(f & PCAP_IF_LOOPBACK) && hasIpAddress(d)) {
      chosen = d->name;
    }
  });
  if (chosen.empty()) {
    throw InputError("no interface to capture on: none is up, running, not loopback and has an address "
                     "(name one; interfaces: " + joined(interfaceNames()) + ")");
  }
  return chosen;
}

PcapLiveSource::PcapLiveSource(const LiveCaptureOptions& options) : impl_(new Impl), options_(options) {
  if (options_.snaplen < 1 || options_.snaplen > 262144) {
    throw InputError("snap length " + std::to_string(options_.snaplen) + " is out of range (1..262144)");
  }
  if (options_.buffer_size < 1) throw InputError("capture buffer size must be positive");
  if (options_.timeout_ms < 1) {
    // 0 would mean "wait for a full block" with TPACKET_V3: a quiet link's packets never arrive.
    throw InputError("capture read timeout must be at least 1 ms");
  }
  name_ = options_.interface;
  if (name_.empty()) {
    name_ = defaultInterface();
    logInfo("live capture: no interface given, using %s (the first up, running, non-loopback interface with an address)",
            name_.c_str());
  }
  open();
}

PcapLiveSource::~PcapLiveSource() { close(); }

void PcapLiveSource::open() {
  auto create = [this](bool promisc) {
    char err[PCAP_ERRBUF_SIZE] = {};
    PcapHandle p(pcap_create(name_.c_str(), err));
    if (!p) throw InputError("cannot capture on '" + name_ + "': " + err);
    pcap_set_snaplen(p.get(), options_.snaplen);
    pcap_set_promisc(p.get(), promisc ? 1 : 0);
    pcap_set_timeout(p.get(), options_.timeout_ms);
    pcap_set_buffer_size(p.get(), options_.buffer_size);
    pcap_set_immediate_mode(p.get(), 0);
    // A recorder keeps timestamps whole; a device that cannot gives microseconds.
    if (options_.nanoseconds) pcap_set_tstamp_precision(p.get(), PCAP_TSTAMP_PRECISION_NANO);
    return p;
  };

  promiscuous_ = options_.promiscuous;
  PcapHandle p = create(promiscuous_);
  int rc = pcap_activate(p.get());
  if (rc == PCAP_ERROR_PROMISC_PERM_DENIED) {
    logWarn("interface %s: promiscuous mode not permitted (%s); capturing only traffic addressed to this host",
            name_.c_str(), pcapMessage(p.get(), rc).c_str());
    promiscuous_ = false;
    p = create(false);
    rc = pcap_activate(p.get());
  }
  if (rc < 0) {
    const std::string msg = pcapMessage(p.get(), rc);
    switch (rc) {
      case PCAP_ERROR_NO_SUCH_DEVICE:
        throw NoSuchInterfaceError("no such interface '" + name_ + "' (interfaces: " + joined(interfaceNames()) + ")");
      case PCAP_ERROR_PERM_DENIED:
        throw CapturePermissionError("cannot capture on '" + name_ +
                                     "': permission denied; capturing needs CAP_NET_RAW and CAP_NET_ADMIN "
                                     "(or run as root) (" + msg + ")");
      case PCAP_ERROR_IFACE_NOT_UP:
        throw InterfaceDownError("interface '" + name_ + "' is down (ip link set " + name_ + " up)");
      default:
        throw InputError("cannot capture on '" + name_ + "': " + msg);
    }
  }
  if (rc == PCAP_WARNING_PROMISC_NOTSUP) {
    logWarn("interface %s does not support promiscuous mode; capturing only traffic addressed to this host",
            name_.c_str());
    promiscuous_ = false;
  } else if (rc > 0) {
    logWarn("interface %s: %s", name_.c_str(), pcapMessage(p.get(), rc).c_str());
  }

  if (!options_.filter.empty()) {
    // The netmask only matters for "ip broadcast"; unknown is fine otherwise.
    bpf_u_int32 net = 0, mask = PCAP_NETMASK_UNKNOWN;
    char err[PCAP_ERRBUF_SIZE] = {};
    if (pcap_lookupnet(name_.c_str(), &net, &mask, err) != 0) mask = PCAP_NETMASK_UNKNOWN;
    bpf_program program;
    if (pcap_compile(p.get(), &program, options_.filter.c_str(), 1, mask) != 0) {
      throw CaptureFilterError("bad capture filter '" + options_.filter + "': " + pcap_geterr(p.get()));
    }
    const int set = pcap_setfilter(p.get(), &program);
    pcap_freecode(&program);
    if (set != 0) throw InputError("cannot apply capture filter on '" + name_ + "': " + pcap_geterr(p.get()));
  }

  // libpcap's own wait with TPACKET_V3 is poll() with no timeout: the
  // kernel's block timer only fires for a block holding packets, so on a
  // silent link pcap_dispatch() would never return. dispatch() polls itself.
  char err[PCAP_ERRBUF_SIZE] = {};
  if (pcap_setnonblock(p.get(), 1, err) != 0) throw InputError("cannot capture on '" + name_ + "': " + err);
  impl_->pcap_fd = pcap_get_selectable_fd(p.get());
  if (impl_->pcap_fd < 0) throw InputError("cannot capture on '" + name_ + "': no selectable descriptor");

  // Last: once a member has joined, nothing may throw before the handle is
  // kept (the group counts the members whose sockets are open).
  if (options_.fanout) {
    options_.fanout->join(pcap_fileno(p.get()), name_);
    impl_->in_fanout = true;
  }
  impl_->datalink = pcap_datalink(p.get());
  impl_->failed = false;
  impl_->last_recv = impl_->last_drop = impl_->last_ifdrop = 0;
  nanos_ = pcap_get_tstamp_precision(p.get()) == PCAP_TSTAMP_PRECISION_NANO;
  impl_->handle = std::move(p);
  ifindex_ = if_nametoindex(name_.c_str());
}

void PcapLiveSource::close() {
  // Before the socket is closed: a member counted is a socket still open, so
  // while the count is above 0 the group (and its id) exists for a joiner.
  if (impl_->in_fanout) options_.fanout->left();
  impl_->in_fanout = false;
  impl_->handle.reset();
  impl_->pcap_fd = -1;
}

void FanoutGroup::join(int fd, const std::string& interface) {
  // The kernel picks the member by its symmetric flow hash, so a
  // conversation stays on one worker; DEFRAG keeps the fragments of a
  // datagram together.
  constexpr int kMode = PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG;
  std::lock_guard lock(mu_);
  const bool first = members_ == 0;
  const int arg = first ? (kMode | PACKET_FANOUT_FLAG_UNIQUEID) << 16 : id_ | kMode << 16;
  if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) != 0) {
    const int err = errno;
    throw InputError("cannot " + (first ? std::string("create a packet fanout group") :
                                          "join packet fanout group " + std::to_string(id_)) +
                     " on '" + interface + "': " + std::strerror(err) +
                     (first ? " (PACKET_FANOUT_FLAG_UNIQUEID needs Linux 4.4 or later)" : ""));
  }
  if (first) {
    int got = 0;
    socklen_t len = sizeof got;
    if (getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &got, &len) != 0)
      throw InputError("cannot read the packet fanout group id on '" + interface + "': " + std::strerror(errno));
    id_ = static_cast<uint16_t>(got & 0xFFFF);
  }
  ++members_;
}

void FanoutGroup::left() {
  std::lock_guard lock(mu_);
  if (members_ > 0 && --members_ == 0) id_ = 0;
}

uint16_t FanoutGroup::id() const {
  std::lock_guard lock(mu_);
  return id_;
}

void PcapLiveSource::accumulateStats() {
  if (!impl_->handle) return;
  pcap_stat s{};
  if (pcap_stats(impl_->handle.get(), &s) != 0) return;
  // Unsigned 32-bit differences stay right across one wrap.
  total_.captured += static_cast<uint32_t>(s.ps_recv - impl_->last_recv);
  total_.capture_dropped += static_cast<uint32_t>(s.ps_drop - impl_->last_drop);
  total_.interface_dropped += static_cast<uint32_t>(s.ps_ifdrop - impl_->last_ifdrop);
  impl_->last_recv = s.ps_recv;
  impl_->last_drop = s.ps_drop;
  impl_->last_ifdrop = s.ps_ifdrop;
}

LiveCaptureStats PcapLiveSource::stats() {
  accumulateStats();
  return total_;
}

template <class Sink>
PcapLiveSource::Result PcapLiveSource::dispatchTo(Sink& sink, int max_packets) {
  if (impl_->stop.load(std::memory_order_relaxed)) return Result::kStopped;
  if (!impl_->handle) {
    if (error_.empty()) error_ = "capture on '" + name_ + "' is closed";
    return Result::kInterfaceDown;
  }
  pcap_t* h = impl_->handle.get();
  // Packets already handed over (a busy link) are read without waiting.
  int n = sink(h, max_packets);
  if (n == 0) {
    pollfd fds[2] = {{impl_->pcap_fd, POLLIN, 0}, {impl_->wake_fd, POLLIN, 0}};
    const int ready = poll(fds, impl_->wake_fd >= 0 ? 2 : 1, options_.timeout_ms);
    if (impl_->stop.load(std::memory_order_relaxed)) return Result::kStopped;
    // On a timeout or a signal (EINTR) n stays 0.
    if (ready > 0) n = sink(h, max_packets);
  }
  if (n > 0) {
    packets_ += static_cast<uint64_t>(n);
    return Result::kPackets;
  }
  if (n == PCAP_ERROR_BREAK) return Result::kStopped;
  if (n < 0) {
    // "The interface disappeared", or another socket error: the handle is unusable.
    impl_->failed = true;
    error_ = "capture on '" + name_ + "' failed: " + pcap_geterr(h);
    return Result::kInterfaceDown;
  }
  // libpcap 1.10 takes ENETDOWN as a pause, not an error (the kernel
  // re-attaches the socket when the interface comes back up), so a silent
  // link is checked here: a capture that went down is worth a log line.
  if (!interfaceUp()) {
    error_ = "interface '" + name_ + "' went down";
    return Result::kInterfaceDown;
  }
  return Result::kIdle;
}

bool PcapLiveSource::interfaceUp() const {
  if (ifindex_ == 0 || impl_->pcap_fd < 0) return true;  // "any" and friends have no flags
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name_.c_str(), IFNAMSIZ - 1);
  // An interface that is gone is libpcap's to report ("The interface disappeared").
  if (ioctl(impl_->pcap_fd, SIOCGIFFLAGS, &ifr) != 0) return true;
  return (ifr.ifr_flags & IFF_UP) != 0;
}

template <PacketSink Sink>
PcapLiveSource::Result PcapLiveSource::dispatch(Sink& sink, int max_packets) {
  SinkContext<Sink> ctx{&sink, nanos_};
  auto burst = [&sink, &ctx](pcap_t* h, int max) {
    const int n = pcap_dispatch(h, max, toSink<Sink>, reinterpret_cast<u_char*>(&ctx));
    sink.onBurstEnd();
    return n;
  };
  return dispatchTo(burst, max_packets);
}

template PcapLiveSource::Result PcapLiveSource::dispatch(Pipeline&, int);
template PcapLiveSource::Result PcapLiveSource::dispatch(RecordingSink<Pipeline>&, int);

PcapLiveSource::Result PcapLiveSource::dispatch(const PacketCallback& callback, int max_packets) {
  CallbackContext ctx{&callback, impl_->handle.get(), nullptr, nanos_};
  auto sink = [&ctx](pcap_t* h, int max) { return pcap_dispatch(h, max, toCallback, reinterpret_cast<u_char*>(&ctx)); };
  const Result r = dispatchTo(sink, max_packets);
  if (ctx.error) std::rethrow_exception(ctx.error);
  return r;
}

bool PcapLiveSource::reopen() {
  if (impl_->handle && !impl_->failed && ifindex_ != 0 && if_nametoindex(name_.c_str()) == ifindex_) {
    // Only down, not gone: the same socket resumes once the interface is up,
    // and keeping it needs no privileges (after dropPrivileges()).
    if (interfaceUp()) {
      error_.clear();
      return true;
    }
    error_ = "interface '" + name_ + "' is down (ip link set " + name_ + " up)";
    return false;
  }
  accumulateStats();
  close();
  try {
    open();
  } catch (const InputError& e) {
    error_ = e.what();
    return false;
  }
  error_.clear();
  return true;
}

void PcapLiveSource::breakLoop() {
  impl_->stop.store(true, std::memory_order_relaxed);
  if (impl_->wake_fd >= 0) {
    const uint64_t one = 1;
    // Async-signal-safe; a full counter already wakes the poll.
    [[maybe_unused]] const ssize_t ignored = ::write(impl_->wake_fd, &one, sizeof one);
  }
}

int PcapLiveSource::datalink() const { return impl_->datalink; }

std::string PcapLiveSource::datalinkName() const {
  const int dlt = datalink();
  const char* name = pcap_datalink_val_to_name(dlt);
  return name ? name : "DLT " + std::to_string(dlt);
}

int PcapLiveSource::selectableFd() const { return impl_->pcap_fd; }

}  // namespace flowfold

#include "flowfold/exporters/udp_sender.h"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "flowfold/log.h"

namespace flowfold {

namespace {

constexpr size_t kControlBytes = CMSG_SPACE(sizeof(uint16_t));
constexpr size_t kMaxMessagesPerCall = 1024;  // UIO_MAXIOV, sendmmsg's limit

// Errors by which the kernel refuses a segmented send as such (not the
// datagrams): no UDP_SEGMENT (old kernel), no checksum offload on the device
// (EIO), UDP checksums off (EINVAL), a segment longer than the path MTU
// (EINVAL, EMSGSIZE since Linux 6.x), where datagrams must be fragmented.
bool refusesSegmentation(int err) {
  return err == EINVAL || err == EIO || err == EMSGSIZE || err == ENOPROTOOPT || err == EOPNOTSUPP;
}

// Errors a connected UDP socket learns from an ICMP message about an earlier
// datagram (a port, host or network unreachable).
bool isNetworkRefusal(int err) {
  return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN;
}

}  // namespace

bool connectedToItself(int fd) {
  sockaddr_storage self{}, peer{};
  socklen_t self_len = sizeof self, peer_len = sizeof peer;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &self_len) != 0 ||
      ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0)
    return false;
  return self_len == peer_len && std::memcmp(&self, &peer, self_len) == 0;
}

UdpSender::UdpSender(int fd, std::string name, uint64_t max_datagrams_per_second)
    : fd_(fd),
      name_(std::move(name)),
      pacer_(max_datagrams_per_second),
      collector_(LocalCollectorDrops::forConnectedSocket(fd)) {}

void UdpSender::checkCollector() {
  if (!collector_) return;
  next_collector_check_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  recheck_collector_ = false;
  const uint64_t before = collector_->total();
  const uint64_t drops = collector_->read();
  if (before == 0 && drops > 0) {
    logWarn("%s: the collector on this host dropped %llu datagrams so far: its socket's receive buffer "
            "overflows (the kernel's count, /proc/net/udp). Give it a larger buffer (nfcapd -B 33554432, "
            "after sysctl -w net.core.rmem_max=33554432) or lower rate_limit (--export-rate); the stats "
            "line counts them as collector_drops",
            name_.c_str(), static_cast<unsigned long long>(drops));
  }
}

bool UdpSender::localCollectorListens() {
  if (recheck_collector_ || std::chrono::steady_clock::now() >= next_collector_check_) checkCollector();
  if (!collector_->nobodyListens()) {
    if (said_nobody_listens_) logInfo("%s: a socket on this host listens for it again; sending", name_.c_str());
    said_nobody_listens_ = false;
    return true;
  }
  // Checked again before every send while nobody listens.
  recheck_collector_ = true;
  if (!said_nobody_listens_) {
    logWarn("%s: nothing on this host listens on that address and port (no UDP socket is bound to it): the "
            "datagrams for it are not sent and their records are counted as lost (dropped=) until a collector "
            "binds it. Is the collector running, on that port?",
            name_.c_str());
    said_nobody_listens_ = true;
  }
  return false;
}

void UdpSender::noteError(int err) {
  if (!isNetworkRefusal(err)) return;
  ++refusals_;
  recheck_collector_ = true;
}

void UdpSender::checkPendingRefusal() {
  if (!sent_since_refusal_check_) return;
  sent_since_refusal_check_ = false;
  pollfd p{fd_, 0, 0};  // POLLERR is reported whatever is asked
  if (::poll(&p, 1, collector_ ? 0 : kRefusalWaitMs) <= 0 || !(p.revents & POLLERR)) return;
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) == 0) noteError(err);
}

void UdpSender::send(std::span<const std::span<const uint8_t>> datagrams, std::span<int> errors) {
  std::fill(errors.begin(), errors.end(), 0);
  if (collector_ && !localCollectorListens()) {
    // The kernel would drop every one of them: none is sent, each is lost,
    // and known to be (the check is this send's own).
    std::fill(errors.begin(), errors.end(), ECONNREFUSED);
    return;
  }
  if (!datagrams.empty()) sent_since_refusal_check_ = true;
  size_t ready = 0;
  for (size_t i = 0; i < datagrams.size(); ++i) {
    if (pacer_.tryAcquire()) continue;
    // The pacer makes us wait: what it already allowed goes out first.
    sendReady(datagrams, ready, i, errors);
    ready = i;
    pacer_.acquire();
  }
  sendReady(datagrams, ready, datagrams.size(), errors);
  if (collector_ && std::chrono::steady_clock::now() >= next_collector_check_) checkCollector();
}

void UdpSender::sendReady(std::span<const std::span<const uint8_t>> datagrams, size_t begin, size_t end,
                          std::span<int> errors) {
  if (begin < end) sendRuns(datagrams.subspan(begin, end - begin), errors.subspan(begin, end - begin));
}

void UdpSender::sendRuns(std::span<const std::span<const uint8_t>> d, std::span<int> errors) {
  // Cut the datagrams into runs: equal sizes, the last of a run may be
  // shorter, at most kMaxSegments and kMaxRunBytes each.
  runs_.clear();
  for (size_t i = 0; i < d.size();) {
    Run run{i, 1, d[i].size()};
    const size_t segment = d[i].size();
    ++i;
    while (segment_ && segment > 0 && i < d.size() && run.count < kMaxSegments && d[i].size() > 0 &&
           d[i].size() <= segment && run.bytes + d[i].size() <= kMaxRunBytes) {
      const bool shorter = d[i].size() < segment;
      run.bytes += d[i].size();
      ++run.count;
      ++i;
      if (shorter) break;
    }
    runs_.push_back(run);
  }

  iov_.resize(d.size());
  for (size_t i = 0; i < d.size(); ++i) iov_[i] = {const_cast<uint8_t*>(d[i].data()), d[i].size()};
  msgs_.assign(runs_.size(), mmsghdr{});
  control_.assign(runs_.size() * kControlBytes, 0);
  for (size_t k = 0; k < runs_.size(); ++k) {
    const Run& run = runs_[k];
    msghdr& h = msgs_[k].msg_hdr;
    h.msg_iov = &iov_[run.first];
    h.msg_iovlen = run.count;
    if (run.count == 1) continue;
    h.msg_control = control_.data() + k * kControlBytes;
    h.msg_controllen = kControlBytes;
    cmsghdr* c = CMSG_FIRSTHDR(&h);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    const auto segment = static_cast<uint16_t>(d[run.first].size());
    std::memcpy(CMSG_DATA(c), &segment, sizeof segment);
  }

  // An error after the first message is not reported (sendmmsg returns the
  // count so far): the next call starts at the message that failed, so it is
  // tried again and a lasting error shows there. An error from the network
  // (an ICMP unreachable for an earlier datagram) is used up by the message
  // that drew it: then the message goes out on the next call, and the early
  // return was all that showed the refusal.
  bool early_return = false;
  for (size_t done = 0; done < runs_.size();) {
    const auto batch = static_cast<unsigned>(std::min(runs_.size() - done, kMaxMessagesPerCall));
    ++trips_;
    const int sent = ::sendmmsg(fd_, &msgs_[done], batch, 0);
    if (sent > 0) {
      if (early_return) noteError(ECONNREFUSED);
      early_return = static_cast<unsigned>(sent) < batch;
      for (size_t k = done; k < done + static_cast<size_t>(sent); ++k)
        if (runs_[k].count > 1) segmented_ += runs_[k].count;
      done += static_cast<size_t>(sent);
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    early_return = false;  // explained by this error
    const int err = sent < 0 ? errno : EIO;
    const Run& run = runs_[done];
    if (run.count > 1 && refusesSegmentation(err)) {
      segment_ = false;
      logInfo("%s: the kernel refuses UDP segmentation offload here (%s); sending one datagram "
              "per system call from now on",
              name_.c_str(), std::strerror(err));
      // This run and the ones after it, which were cut for segmentation.
      for (; done < runs_.size(); ++done) sendOneByOne(d, runs_[done], errors);
      return;
    }
    std::fill_n(errors.begin() + static_cast<std::ptrdiff_t>(run.first), run.count, err);
    noteError(err);
    ++done;
  }
}

void UdpSender::sendOneByOne(std::span<const std::span<const uint8_t>> d, const Run& run,
                             std::span<int> errors) {
  for (size_t i = run.first; i < run.first + run.count; ++i) {
    for (;;) {
      ++trips_;
      const ssize_t n = ::send(fd_, d[i].data(), d[i].size(), 0);
      if (n == static_cast<ssize_t>(d[i].size())) break;
      if (n < 0 && errno == EINTR) continue;
      errors[i] = n < 0 ? errno : EMSGSIZE;
      noteError(errors[i]);
      break;
    }
  }
}

}  // namespace flowfold

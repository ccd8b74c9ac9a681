#pragma once
// Telling systemd how the service is doing (sd_notify(3)'s protocol, which is
// one datagram per message to the socket named in $NOTIFY_SOCKET): READY=1
// once the captures and exporters are up, RELOADING=1 / READY=1 around a
// reload, STOPPING=1 at a stop, and WATCHDOG=1 while the packet loops turn,
// when the unit asks for a watchdog ($WATCHDOG_USEC). Written here rather
// than linked from libsystemd: the protocol is these few lines.
//
// Without $NOTIFY_SOCKET (not started by systemd, or Type=simple) every call
// does nothing.

#include <chrono>
#include <string>

namespace flowfold {

class ServiceNotifier {
 public:
  /// Reads the environment and opens the socket (before privileges are
  /// dropped; the socket stays usable afterwards).
  ServiceNotifier();
  ~ServiceNotifier();
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  bool active() const { return fd_ >= 0; }
  void ready(const std::string& status);
  void reloading();
  void stopping();
  /// A sign of life for systemd's watchdog.
  void watchdog();
  /// How often watchdog() must be called (half of $WATCHDOG_USEC); zero when
  /// the unit has no watchdog.
  std::chrono::milliseconds watchdogEvery() const { return watchdog_every_; }

 private:
  void send(const std::string& message);

  int fd_ = -1;
  std::chrono::milliseconds watchdog_every_{0};
};

}  // namespace flowfold

#include "flowfold/probe/service_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "flowfold/log.h"

namespace flowfold {

ServiceNotifier::ServiceNotifier() {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || (path[0] != '/' && path[0] != '@') || std::strlen(path) >= sizeof(sockaddr_un::sun_path)) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path, std::strlen(path));
  if (path[0] == '@') addr.sun_path[0] = '\0';  // an abstract socket
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + std::strlen(path));
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ >= 0 && ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    logWarn("cannot reach systemd's notification socket %s: %s; the service manager will not hear from flowfold",
            path, std::strerror(errno));
    ::close(fd_);
    fd_ = -1;
    return;
  }
  // The watchdog is for this process only ($WATCHDOG_PID, when set, says whose it is).
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  const bool ours = !pid || std::strtoll(pid, nullptr, 10) == static_cast<long long>(::getpid());
  const long long every_us = usec && ours ? std::strtoll(usec, nullptr, 10) : 0;
  if (every_us > 0) watchdog_every_ = std::chrono::milliseconds(std::max<long long>(every_us / 2000, 1));
}

ServiceNotifier::~ServiceNotifier() {
  if (fd_ >= 0) ::close(fd_);
}

void ServiceNotifier::send(const std::string& message) {
  if (fd_ < 0) return;
  // A lost notification is not worth a failure: systemd times out and says so.
  if (::send(fd_, message.data(), message.size(), MSG_NOSIGNAL) < 0)
    logDebug("systemd notification '%s' not sent: %s", message.c_str(), std::strerror(errno));
}

void ServiceNotifier::ready(const std::string& status) { send("READY=1\nSTATUS=" + status); }
void ServiceNotifier::reloading() { send("RELOADING=1\nSTATUS=reloading the configuration"); }
void ServiceNotifier::stopping() { send("STOPPING=1\nSTATUS=exporting every flow before exit"); }
void ServiceNotifier::watchdog() { send("WATCHDOG=1"); }

}  // namespace flowfold

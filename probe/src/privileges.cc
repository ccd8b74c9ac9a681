#include "flowfold/probe/privileges.h"

#include "flowfold/probe/accounts.h"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace flowfold {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("cannot drop privileges: " + what);
}

[[noreturn]] void failErrno(const std::string& what) {
  fail(what + ": " + std::strerror(errno));
}

// The value of a "Key:\t..." line of a /proc status file ("" when absent).
std::string statusField(const char* path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size() + 1, key + ":") == 0) return line.substr(key.size() + 1);
  }
  return "";
}

// Capabilities are per thread; /proc/self is the thread-group leader.
std::string threadStatusField(const std::string& key) {
  std::string v = statusField("/proc/thread-self/status", key);
  return v.empty() ? statusField("/proc/self/status", key) : v;
}

// "Uid:\treal\teffective\tsaved\tfilesystem": all four must be `id`.
void expectIds(const std::string& key, unsigned id) {
  const std::string value = statusField("/proc/self/status", key);
  std::istringstream in(value);
  unsigned v = 0;
  int count = 0;
  while (in >> v) {
    if (v != id) fail("/proc/self/status shows " + key + ":" + value + ", expected " + std::to_string(id) + " throughout");
    ++count;
  }
  if (count != 4) fail("cannot read the " + key + " line of /proc/self/status");
}

uint64_t capabilityMask(const std::string& key) {
  const std::string hex = threadStatusField(key);
  if (hex.empty()) return 0;
  return std::stoull(hex, nullptr, 16);
}

int lastCapability() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int last = CAP_LAST_CAP;
  in >> last;
  return last;
}

constexpr const char* kCapabilityNames[] = {
    "cap_chown",          "cap_dac_override",     "cap_dac_read_search", "cap_fowner",
    "cap_fsetid",         "cap_kill",             "cap_setgid",          "cap_setuid",
    "cap_setpcap",        "cap_linux_immutable",  "cap_net_bind_service", "cap_net_broadcast",
    "cap_net_admin",      "cap_net_raw",          "cap_ipc_lock",        "cap_ipc_owner",
    "cap_sys_module",     "cap_sys_rawio",        "cap_sys_chroot",      "cap_sys_ptrace",
    "cap_sys_pacct",      "cap_sys_admin",        "cap_sys_boot",        "cap_sys_nice",
    "cap_sys_resource",   "cap_sys_time",         "cap_sys_tty_config",  "cap_mknod",
    "cap_lease",          "cap_audit_write",      "cap_audit_control",   "cap_setfcap",
    "cap_mac_override",   "cap_mac_admin",        "cap_syslog",          "cap_wake_alarm",
    "cap_block_suspend",  "cap_audit_read",       "cap_perfmon",         "cap_bpf",
    "cap_checkpoint_restore",
};

std::string capabilityName(int n) {
  if (n >= 0 && n < static_cast<int>(std::size(kCapabilityNames))) return kCapabilityNames[n];
  return "cap_" + std::to_string(n);
}

// Permitted = effective = `keep`, inheritable empty, for the calling thread
// only: capset(2) with pid 0 changes the caller's credentials, and every
// thread has its own.
void setCapabilities(uint64_t keep) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  data[0].permitted = data[0].effective = static_cast<uint32_t>(keep);
  data[1].permitted = data[1].effective = static_cast<uint32_t>(keep >> 32);
  if (syscall(SYS_capset, &header, data) != 0) failErrno("capset");
}

constexpr uint64_t kNetRaw = uint64_t{1} << CAP_NET_RAW;

// Empties the calling thread's bounding set when it may (CAP_SETPCAP is
// effective: root, or a service manager that granted it for this step).
// Dropping from the bounding set does not touch the permitted set.
void clearBoundingSet() {
  if ((capabilityMask("CapEff") & (uint64_t{1} << CAP_SETPCAP)) == 0) return;
  for (int n = 0; n <= lastCapability() && n < 64; ++n) {
    if (prctl(PR_CAPBSET_READ, static_cast<unsigned long>(n), 0L, 0L, 0L) != 1) continue;
    if (prctl(PR_CAPBSET_DROP, static_cast<unsigned long>(n), 0L, 0L, 0L) != 0) {
      failErrno("prctl(PR_CAPBSET_DROP, " + capabilityName(n) + ")");
    }
  }
}

}  // namespace

bool userExists(const std::string& user) {
  return !user.empty() && findUser(user).has_value();
}

bool dropPrivileges(const std::string& user, const std::string& group, bool keep_capture_capability) {
  const std::optional<UserAccount> pw = user.empty() ? std::nullopt : findUser(user);
  if (!pw) {
    fail("no such user '" + user + "' (create it, e.g. useradd --system --no-create-home --shell /usr/sbin/nologin " +
         user + ")");
  }
  gid_t gid = pw->gid;
  if (!group.empty()) {
    const std::optional<gid_t> g = findGroup(group);
    if (!g) fail("no such group '" + group + "'");
    gid = *g;
  }
  if (geteuid() != 0) return false;
  if (pw->uid == 0) fail("user '" + user + "' is root");

  const uint64_t keep = keep_capture_capability ? kNetRaw : 0;
  // While root still has CAP_SETPCAP: after setuid() only `keep` is left.
  clearBoundingSet();
  if (keep && prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) != 0) failErrno("prctl(PR_SET_KEEPCAPS)");
  if (initgroups(pw->name.c_str(), gid) != 0) failErrno("initgroups(" + user + ")");
  if (setgid(gid) != 0) failErrno("setgid(" + std::to_string(gid) + ")");
  if (setuid(pw->uid) != 0) failErrno("setuid(" + std::to_string(pw->uid) + ")");
  if (keep) {
    // KEEPCAPS kept the whole permitted set through setuid; narrow it to
    // CAP_NET_RAW, which also makes it effective again.
    setCapabilities(keep);
    if (prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L) != 0) failErrno("prctl(PR_SET_KEEPCAPS, 0)");
  }

  if (setuid(0) == 0 || seteuid(0) == 0) fail("root could be regained after setuid(" + std::to_string(pw->uid) + ")");
  if (setgid(0) == 0 || setegid(0) == 0) fail("group root could be regained after setgid(" + std::to_string(gid) + ")");
  if (getuid() != pw->uid || geteuid() != pw->uid || getgid() != gid || getegid() != gid) fail("ids did not change");
  expectIds("Uid", pw->uid);
  expectIds("Gid", gid);
  const uint64_t permitted = capabilityMask("CapPrm");
  if ((permitted & ~keep) != 0) {
    std::ostringstream m;
    m << "capabilities remain after setuid (CapPrm=" << std::hex << permitted << ")";
    fail(m.str());
  }
  return true;
}

bool confineCapabilities(bool keep_capture_capability) {
  clearBoundingSet();
  // Ambient capabilities (systemd's AmbientCapabilities=) would otherwise
  // pass to any program executed; the inheritable set goes with them.
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0L, 0L, 0L) != 0) {
    failErrno("prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
  }
  const uint64_t keep = keep_capture_capability ? kNetRaw : 0;
  setCapabilities(capabilityMask("CapPrm") & keep);
  // No execve() can ever add privileges again (setuid bits, file
  // capabilities), whatever the bounding set still holds.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) != 0) failErrno("prctl(PR_SET_NO_NEW_PRIVS)");
  return capabilityMask("CapBnd") == 0;
}

void dropThreadCapabilities() { setCapabilities(0); }

uint64_t effectiveCapabilities() { return capabilityMask("CapEff"); }

std::string describeCapabilities() {
  const uint64_t eff = effectiveCapabilities();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(eff));
  const int last = lastCapability();
  std::vector<std::string> set, unset;
  for (int n = 0; n <= last && n < 64; ++n) ((eff >> n) & 1 ? set : unset).push_back(capabilityName(n));
  std::string list;
  auto join = [](const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
    return out;
  };
  if (set.empty()) {
    list = "none";
  } else if (unset.empty()) {
    list = "all";
  } else if (set.size() > unset.size()) {
    list = "all but " + join(unset);
  } else {
    list = join(set);
  }
  return std::string("CapEff=") + hex + " (" + list + ")";
}

}  // namespace flowfold

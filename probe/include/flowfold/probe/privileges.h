#pragma once
// Giving up root once the capture is open.
//
// An open capture handle is an already-open packet socket: it keeps
// receiving after setuid(). What is lost is the right to open another one, so
// PcapLiveSource::reopen() after an interface comes back fails with
// "permission denied" — unless CAP_NET_RAW was kept (keep_capture_capability).

#include <cstdint>
#include <string>

namespace flowfold {

/// True when the user name exists in the password database.
bool userExists(const std::string& user);

/// When running as root: initgroups (the user's supplementary groups),
/// setgid, setuid, in that order; then verifies that root cannot be regained
/// (setuid(0) and setgid(0) fail) and that /proc/self/status shows the new
/// uid and gid. An empty group means the user's primary group.
///
/// keep_capture_capability keeps CAP_NET_RAW (and nothing else) across the
/// switch, via PR_SET_KEEPCAPS and capset(), so a capture can be reopened.
/// The bounding set is emptied first, while root may still do so.
/// Capabilities are per thread: call this before starting other threads,
/// from the thread that will reopen the capture; threads that exist already
/// lose every capability.
///
/// Returns false, changing nothing, when not running as root. Throws
/// std::runtime_error with one clear line when the user or group does not
/// exist or a step fails.
bool dropPrivileges(const std::string& user, const std::string& group, bool keep_capture_capability = false);

/// After the captures are open, from the only thread there is, as root that
/// has switched user (dropPrivileges) or as a user started with capabilities
/// (systemd's AmbientCapabilities=, file capabilities): narrows the calling
/// thread, and so every thread it starts afterwards, to what reopening a
/// capture needs:
///   - the bounding set emptied, when CAP_SETPCAP is effective (root has it;
///     the systemd unit grants it for this step); otherwise it stays as the
///     caller got it;
///   - the ambient and inheritable sets emptied;
///   - permitted = effective = CAP_NET_RAW when keep_capture_capability and
///     it was permitted, else nothing;
///   - no_new_privs set, so no execve() can gain privileges again.
/// Libpcap's reopen needs CAP_NET_RAW only: promiscuous mode is a
/// PACKET_ADD_MEMBERSHIP and the ring a PACKET_RX_RING on the packet socket,
/// neither of which asks for CAP_NET_ADMIN.
/// Returns whether the bounding set is empty. Throws std::runtime_error when a
/// step fails.
bool confineCapabilities(bool keep_capture_capability);

/// Empties the calling thread's effective, permitted and inheritable sets,
/// for good. For the thread that starts the threads that never open a
/// capture (metrics, export, the main loop): capabilities are per thread and
/// copied at clone, so the capture threads must be started before this.
void dropThreadCapabilities();

/// CapEff of the calling thread as a bit mask (bit n = capability n).
uint64_t effectiveCapabilities();

/// For log lines: "CapEff=0000000000002000 (cap_net_raw)", "... (all)",
/// "... (none)".
std::string describeCapabilities();

}  // namespace flowfold

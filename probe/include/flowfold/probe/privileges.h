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
/// Capabilities are per thread: call this before starting other threads,
/// from the thread that will reopen the capture; threads that exist already
/// lose every capability.
///
/// Returns false, changing nothing, when not running as root. Throws
/// std::runtime_error with one clear line when the user or group does not
/// exist or a step fails.
bool dropPrivileges(const std::string& user, const std::string& group, bool keep_capture_capability = false);

/// CapEff of the calling thread as a bit mask (bit n = capability n).
uint64_t effectiveCapabilities();

/// For log lines: "CapEff=0000000000002000 (cap_net_raw)", "... (all)",
/// "... (none)".
std::string describeCapabilities();

}  // namespace flowfold

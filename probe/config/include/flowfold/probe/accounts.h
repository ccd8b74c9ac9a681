#pragma once
// The system's users and groups, looked up by name (getpwnam_r/getgrnam_r,
// with a buffer that grows as the entry needs): what the configuration checks
// (`user:`, `group:`) and what the privilege drop uses, one way.

#include <sys/types.h>

#include <optional>
#include <string>

namespace flowfold {

struct UserAccount {
  uid_t uid;
  gid_t gid;  // the user's primary group
  std::string name;
};

/// The user named `name`; nullopt when there is none (or the lookup failed).
std::optional<UserAccount> findUser(const std::string& name);
/// The gid of the group named `name`; nullopt when there is none.
std::optional<gid_t> findGroup(const std::string& name);

}  // namespace flowfold

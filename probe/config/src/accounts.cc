#include "flowfold/probe/accounts.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace flowfold {

namespace {

// Calls `lookup(buffer)` (a getpwnam_r/getgrnam_r) with a buffer of the size
// sysconf(size_name) suggests, grown while the entry does not fit (ERANGE).
template <class Lookup>
void withGrowingBuffer(int size_name, Lookup lookup) {
  const long size = sysconf(size_name);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
  while (lookup(buf) == ERANGE) buf.resize(buf.size() * 2);
}

}  // namespace

std::optional<UserAccount> findUser(const std::string& name) {
  std::optional<UserAccount> out;
  withGrowingBuffer(_SC_GETPW_R_SIZE_MAX, [&](std::vector<char>& buf) {
    passwd pw;
    passwd* result = nullptr;
    const int rc = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &result);
    if (rc == 0 && result != nullptr) out = UserAccount{pw.pw_uid, pw.pw_gid, pw.pw_name};
    return rc;
  });
  return out;
}

std::optional<gid_t> findGroup(const std::string& name) {
  std::optional<gid_t> out;
  withGrowingBuffer(_SC_GETGR_R_SIZE_MAX, [&](std::vector<char>& buf) {
    group gr;
    group* result = nullptr;
    const int rc = getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &result);
    if (rc == 0 && result != nullptr) out = gr.gr_gid;
    return rc;
  });
  return out;
}

}  // namespace flowfold

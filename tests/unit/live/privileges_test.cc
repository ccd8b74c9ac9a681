#include "flowfold/probe/privileges.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <pwd.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "child_process.h"

namespace flowfold {
namespace {

using test_support::runInChild;

#define SKIP_UNLESS_ROOT_AND_NOBODY()                                              \
  if (geteuid() != 0) GTEST_SKIP() << "needs root";                                \
  if (!getpwnam("nobody") || !getgrnam("nogroup")) GTEST_SKIP() << "no nobody:nogroup"

TEST(PrivilegesTest, KnowsWhichUsersExist) {
  EXPECT_TRUE(userExists("root"));
  EXPECT_FALSE(userExists("flowfold-no-such-user"));
  EXPECT_FALSE(userExists(""));
}

TEST(PrivilegesTest, UnknownUserThrowsAClearMessage) {
  try {
    dropPrivileges("flowfold-no-such-user", "");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no such user 'flowfold-no-such-user'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(getuid(), getuid());  // still here, unchanged
}

TEST(PrivilegesTest, UnknownGroupThrowsAClearMessage) {
  try {
    dropPrivileges("root", "flowfold-no-such-group");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no such group 'flowfold-no-such-group'"), std::string::npos) << e.what();
  }
}

TEST(PrivilegesTest, DescribesEffectiveCapabilities) {
  const std::string d = describeCapabilities();
  EXPECT_EQ(d.rfind("CapEff=", 0), 0u) << d;
  if (geteuid() == 0) {
    EXPECT_NE(effectiveCapabilities() & (uint64_t{1} << CAP_NET_RAW), 0u);
    EXPECT_EQ(d.find("(none)"), std::string::npos) << d;
  }
}

TEST(PrivilegesTest, DropsToNobodyForGood) {
  SKIP_UNLESS_ROOT_AND_NOBODY();
  const uid_t uid = getpwnam("nobody")->pw_uid;
  const gid_t gid = getgrnam("nogroup")->gr_gid;
  enum Step { kOk = 0, kNotDropped = 10, kUid, kGid, kGroups, kRegainedRoot, kRegainedGroup, kCaps, kDescribe, kSecond };
  const int rc = runInChild([&]() -> int {
    if (!dropPrivileges("nobody", "nogroup")) return kNotDropped;
    if (getuid() != uid || geteuid() != uid) return kUid;
    if (getgid() != gid || getegid() != gid) return kGid;
    std::vector<gid_t> groups(64);
    const int n = getgroups(static_cast<int>(groups.size()), groups.data());
    if (n < 0) return kGroups;
    for (int i = 0; i < n; ++i) {
      if (groups[static_cast<size_t>(i)] == 0) return kGroups;
    }
    if (setuid(0) == 0 || seteuid(0) == 0) return kRegainedRoot;
    if (setgid(0) == 0 || setgroups(0, nullptr) == 0) return kRegainedGroup;
    if (effectiveCapabilities() != 0) return kCaps;
    if (describeCapabilities() != "CapEff=0000000000000000 (none)") return kDescribe;
    // Not root any more: nothing to do, and no error.
    if (dropPrivileges("nobody", "nogroup")) return kSecond;
    return kOk;
  });
  EXPECT_EQ(rc, kOk);
}

TEST(PrivilegesTest, KeepsOnlyNetRawWhenAsked) {
  SKIP_UNLESS_ROOT_AND_NOBODY();
  const uid_t uid = getpwnam("nobody")->pw_uid;
  enum Step { kOk = 0, kNotDropped = 10, kUid, kCaps, kRegainedRoot, kDescribe };
  const int rc = runInChild([&]() -> int {
    if (!dropPrivileges("nobody", "", /*keep_capture_capability=*/true)) return kNotDropped;
    if (getuid() != uid || geteuid() != uid) return kUid;
    if (effectiveCapabilities() != (uint64_t{1} << CAP_NET_RAW)) return kCaps;
    if (setuid(0) == 0 || seteuid(0) == 0) return kRegainedRoot;
    if (describeCapabilities() != "CapEff=0000000000002000 (cap_net_raw)") return kDescribe;
    return kOk;
  });
  EXPECT_EQ(rc, kOk);
}

// A field of the calling thread's /proc status, read independently of the
// library ("" when absent).
std::string threadStatus(const std::string& key) {
  std::ifstream in("/proc/thread-self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":\t", 0) == 0) return line.substr(key.size() + 2);
  }
  return "";
}

uint64_t threadMask(const std::string& key) { return std::stoull(threadStatus(key), nullptr, 16); }

TEST(PrivilegesTest, ConfinesToNetRawWithEmptyBoundingSetAndNoNewPrivs) {
  SKIP_UNLESS_ROOT_AND_NOBODY();
  enum Step { kOk = 0, kNotDropped = 10, kNotBounded, kBounding, kAmbient, kInheritable, kNoNewPrivs, kCaps,
              kEarlyThread, kMain, kLateThread };
  const int rc = runInChild([&]() -> int {
    constexpr uint64_t kNetRaw = uint64_t{1} << CAP_NET_RAW;
    if (!dropPrivileges("nobody", "", /*keep_capture_capability=*/true)) return kNotDropped;
    if (!confineCapabilities(/*keep_capture_capability=*/true)) return kNotBounded;
    if (threadMask("CapBnd") != 0) return kBounding;
    if (threadMask("CapAmb") != 0) return kAmbient;
    if (threadMask("CapInh") != 0) return kInheritable;
    if (threadStatus("NoNewPrivs") != "1") return kNoNewPrivs;
    if (threadMask("CapPrm") != kNetRaw || threadMask("CapEff") != kNetRaw) return kCaps;
    // Capabilities are copied at clone: a thread started now keeps NET_RAW
    // after this one gives everything up; one started afterwards has none.
    uint64_t early = 0, late = ~uint64_t{0};
    std::thread first([&] { early = threadMask("CapPrm"); });
    first.join();
    dropThreadCapabilities();
    if (threadMask("CapPrm") != 0 || threadMask("CapEff") != 0) return kMain;
    std::thread second([&] { late = threadMask("CapPrm") | threadMask("CapEff"); });
    second.join();
    if (early != kNetRaw) return kEarlyThread;
    if (late != 0) return kLateThread;
    return kOk;
  });
  EXPECT_EQ(rc, kOk);
}

}  // namespace
}  // namespace flowfold

// OutputFile: what the file exporters open and how a failed write is taken
// back. Checked against the file system (stat, read back), not against
// OutputFile's own view.

#include "flowfold/exporters/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace flowfold {
namespace {

namespace fs = std::filesystem;

class OutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("flowfold_output_file_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  static std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  static void put(const std::string& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

  fs::path dir_;
};

TEST_F(OutputFileTest, AppendsToAnExistingFileInsteadOfTruncatingIt) {
  put(path("f"), "earlier run\n");
  {
    OutputFile f(path("f"));
    size_t written = 0;
    EXPECT_EQ(f.writeAll("this run\n", 9, written), 0);
    EXPECT_EQ(written, 9u);
  }
  EXPECT_EQ(slurp(path("f")), "earlier run\nthis run\n");
}

TEST_F(OutputFileTest, CreatesANewFile0640LessTheUmask) {
  const mode_t old = ::umask(022);
  { OutputFile f(path("new")); }
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::stat(path("new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(OutputFileTest, TakesBackThePartOfAFailedWriteAfterTheLastWholeUnit) {
  put(path("f"), "kept\n");
  OutputFile f(path("f"));
  ASSERT_TRUE(f.canTakeBack());
  size_t written = 0;
  ASSERT_EQ(f.writeAll("line 1\nline 2\nli", 16, written), 0);
  // As if the write had failed after those 16 bytes: keep the two whole lines.
  ASSERT_TRUE(f.takeBack(16, 14));
  EXPECT_EQ(slurp(path("f")), "kept\nline 1\nline 2\n");
  ASSERT_EQ(f.writeAll("line 3\n", 7, written), 0);  // the next write lands right after them
  EXPECT_EQ(slurp(path("f")), "kept\nline 1\nline 2\nline 3\n");
}

TEST_F(OutputFileTest, RefusesASymlinkToARegularFileAndLeavesItAlone) {
  put(path("victim"), "precious\n");
  fs::create_symlink(path("victim"), path("link"));
  try {
    OutputFile f(path("link"));
    ADD_FAILURE() << "a symlink to a regular file was opened";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path("link") + " is a symbolic link"), std::string::npos) << e.what();
  }
  EXPECT_EQ(slurp(path("victim")), "precious\n");
}

TEST_F(OutputFileTest, ADanglingSymlinkCreatesNothing) {
  fs::create_symlink(path("absent"), path("link"));
  EXPECT_THROW(OutputFile f(path("link")), std::runtime_error);
  EXPECT_FALSE(fs::exists(path("absent")));
}

TEST_F(OutputFileTest, FollowsASymlinkToACharacterDeviceAndCannotTakeBackThere) {
  fs::create_symlink("/dev/null", path("null"));
  OutputFile f(path("null"));
  EXPECT_FALSE(f.canTakeBack());
  size_t written = 0;
  EXPECT_EQ(f.writeAll("x", 1, written), 0);
  EXPECT_FALSE(f.takeBack(1, 0));
  EXPECT_TRUE(f.takeBack(0, 0));  // nothing written, nothing to take back
}

TEST_F(OutputFileTest, RefusesASymlinkToADeviceOtherThanNullZeroFullOrATerminal) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (mknod)";
  // A device node of our own, 1:8 (what /dev/random is: writing there is
  // harmless even if this test fails), stands for a disk's or a watchdog's.
  const std::string node = path("device"), link = path("out");
  ASSERT_EQ(::mknod(node.c_str(), S_IFCHR | 0600, makedev(1, 8)), 0);
  ASSERT_EQ(::symlink(node.c_str(), link.c_str()), 0);
  EXPECT_THROW(OutputFile{link}, std::runtime_error);
  // The same device's null sibling is fine: 1:3.
  const std::string null_node = path("null"), null_link = path("to-null");
  ASSERT_EQ(::mknod(null_node.c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);
  ASSERT_EQ(::symlink(null_node.c_str(), null_link.c_str()), 0);
  EXPECT_NO_THROW(OutputFile{null_link});
}

TEST_F(OutputFileTest, RefusesToAppendToAnotherUsersFileAndLeavesItAlone) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (chown)";
  const std::string p = path("planted.json");
  put(p, "theirs\n");
  ASSERT_EQ(::chown(p.c_str(), 65534, 65534), 0);  // nobody's, made before flowfold ran
  try {
    OutputFile f(p);
    ADD_FAILURE() << "opened another user's file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("belongs to uid 65534"), std::string::npos) << e.what();
  }
  EXPECT_EQ(slurp(p), "theirs\n");
  ASSERT_EQ(::chown(p.c_str(), 0, 0), 0);  // root's: appended to
  EXPECT_NO_THROW(OutputFile{p});
}

TEST_F(OutputFileTest, DashIsStandardOutput) {
  OutputFile f("-");
  EXPECT_EQ(f.name(), "standard output");
  EXPECT_FALSE(fs::exists("-"));
}

}  // namespace
}  // namespace flowfold

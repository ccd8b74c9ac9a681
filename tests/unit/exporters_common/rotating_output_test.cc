// RotationPlan / RotatingOutput: the names of rotated files, the alignment of
// their intervals, and which files the caps remove. Times are written out by
// hand (1700000000 s is 2023-11-14 22:13:20 UTC), and what is on disk is
// checked with the file system, not with the plan's own view.

#include "flowfold/exporters/rotating_output.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

namespace flowfold {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kT0 = 1'700'000'000'000;  // 2023-11-14 22:13:20.000 UTC
constexpr uint64_t kMin = 60'000;

class RotatingOutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("flowfold_rotation_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  static void put(const std::string& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }
  static std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::set<std::string> listing() const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.insert(e.path().filename().string());
    return names;
  }
  static void write(OutputFile* f, const std::string& text) {
    ASSERT_NE(f, nullptr);
    size_t written = 0;
    ASSERT_EQ(f->writeAll(text.data(), text.size(), written), 0);
  }

  fs::path dir_;
};

TEST_F(RotatingOutputTest, NamesCarryTheIntervalStartInUtcBeforeTheExtension) {
  RotationPlan five("/var/log/flowfold/flows.ipfix", {5 * kMin, 0, 0});
  EXPECT_EQ(five.intervalStart(kT0), kT0 - 3 * kMin - 20'000);  // 22:10:00
  EXPECT_EQ(five.pathFor(five.intervalStart(kT0)), "/var/log/flowfold/flows.202311142210.ipfix");
  RotationPlan hour("flows", {60 * kMin, 0, 0});
  EXPECT_EQ(hour.pathFor(hour.intervalStart(kT0)), "./flows.202311142200");
  RotationPlan dotfile("/d/.flows", {kMin, 0, 0});
  EXPECT_EQ(dotfile.pathFor(dotfile.intervalStart(kT0)), "/d/.flows.202311142213");
  RotationPlan two_dots("/d/x.y/flows.v2.json", {kMin, 0, 0});
  EXPECT_EQ(two_dots.pathFor(two_dots.intervalStart(kT0)), "/d/x.y/flows.v2.202311142213.json");
  // Not a whole number of minutes: the seconds are in the name too.
  RotationPlan thirty("/d/f.txt", {30'000, 0, 0});
  EXPECT_EQ(thirty.pathFor(thirty.intervalStart(kT0)), "/d/f.20231114221300.txt");
  EXPECT_EQ(thirty.pathFor(thirty.intervalStart(kT0 + 10'000)), "/d/f.20231114221330.txt");
}

TEST_F(RotatingOutputTest, ReadsBackOnlyItsOwnNames) {
  RotationPlan p("/d/flows.ipfix", {5 * kMin, 0, 0});
  EXPECT_EQ(p.startOf("flows.202311142210.ipfix"), static_cast<int64_t>(kT0 - 200'000));
  EXPECT_EQ(p.startOf("flows.ipfix"), -1);
  EXPECT_EQ(p.startOf("flows.202311142210.json"), -1);
  EXPECT_EQ(p.startOf("other.202311142210.ipfix"), -1);
  EXPECT_EQ(p.startOf("flows.20231114221.ipfix"), -1);    // 11 digits
  EXPECT_EQ(p.startOf("flows.202313142210.ipfix"), -1);   // month 13
  EXPECT_EQ(p.startOf("flows.202311142260.ipfix"), -1);   // minute 60
  EXPECT_EQ(p.startOf("flows.2023111422100.ipfix"), -1);  // 13 digits
  EXPECT_EQ(p.startOf("flows.20231114221O.ipfix"), -1);   // a letter O
}

TEST_F(RotatingOutputTest, RefusesStandardOutputAndAMissingDirectory) {
  EXPECT_THROW(RotatingOutput("-", {kMin, 0, 0}), std::invalid_argument);
  try {
    RotatingOutput(path("missing/flows.ipfix"), {kMin, 0, 0});
    FAIL() << "a missing directory was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("No such file or directory; create it"), std::string::npos) << e.what();
  }
}

TEST_F(RotatingOutputTest, OpensOneFilePerIntervalAndAppendsWithinOne) {
  RotatingOutput out(path("flows.txt"), {kMin, 0, 0});
  EXPECT_EQ(out.file(), nullptr);  // nothing before the first record's time is known
  EXPECT_TRUE(out.advanceTo(kT0));
  write(out.file(), "a\n");
  EXPECT_FALSE(out.advanceTo(kT0 + 39'999));  // 22:13:59.999: the same minute
  write(out.file(), "b\n");
  EXPECT_TRUE(out.advanceTo(kT0 + 40'000));  // 22:14:00
  write(out.file(), "c\n");
  EXPECT_EQ(listing(), (std::set<std::string>{"flows.202311142213.txt", "flows.202311142214.txt"}));
  EXPECT_EQ(slurp(path("flows.202311142213.txt")), "a\nb\n");
  EXPECT_EQ(slurp(path("flows.202311142214.txt")), "c\n");
  // A restart within 22:14 appends to its file.
  RotatingOutput again(path("flows.txt"), {kMin, 0, 0});
  EXPECT_TRUE(again.advanceTo(kT0 + 50'000));
  write(again.file(), "d\n");
  EXPECT_EQ(slurp(path("flows.202311142214.txt")), "c\nd\n");
}

TEST_F(RotatingOutputTest, NeverGoesBackToAnEarlierIntervalsFile) {
  RotatingOutput out(path("f.txt"), {kMin, 0, 0});
  EXPECT_TRUE(out.advanceTo(kT0 + 40'000));  // 22:14
  write(out.file(), "a\n");
  EXPECT_FALSE(out.advanceTo(kT0));  // 22:13: a late batch, or the clock stepped back
  write(out.file(), "b\n");
  EXPECT_EQ(listing(), (std::set<std::string>{"f.202311142214.txt"}));
  EXPECT_EQ(slurp(path("f.202311142214.txt")), "a\nb\n");
}

TEST_F(RotatingOutputTest, MaxFilesRemovesTheOldestOfItsOwnFilesOnly) {
  // Earlier intervals' files, and files that only look alike.
  for (const char* name : {"flows.202311142200.txt", "flows.202311142201.txt", "flows.202311142202.txt",
                           "flows.202311142203.txt", "flows.txt", "flows.202311142159.json", "notes.txt"})
    put(path(name), "x\n");
  fs::create_directory(path("flows.202311142158.txt"));  // a directory with a rotated file's name
  fs::create_symlink(path("notes.txt"), path("flows.202311142157.txt"));  // a link likewise
  RotatingOutput out(path("flows.txt"), {kMin, 3, 0});
  EXPECT_TRUE(out.advanceTo(kT0));  // opens 22:13: five regular files of this rotation, three are kept
  EXPECT_EQ(listing(), (std::set<std::string>{"flows.202311142202.txt", "flows.202311142203.txt",
                                              "flows.202311142213.txt", "flows.txt", "flows.202311142159.json",
                                              "notes.txt", "flows.202311142158.txt", "flows.202311142157.txt"}));
  EXPECT_EQ(slurp(path("notes.txt")), "x\n");  // the link's target is untouched
}

TEST_F(RotatingOutputTest, MaxFilesNeverRemovesTheFileBeingWritten) {
  // A file from the future (a clock stepped back) is newer than the current one.
  put(path("f.202311142300.txt"), "x\n");
  RotatingOutput out(path("f.txt"), {kMin, 1, 0});
  EXPECT_TRUE(out.advanceTo(kT0));
  EXPECT_EQ(listing(), (std::set<std::string>{"f.202311142213.txt"}));
  write(out.file(), "kept\n");
  EXPECT_EQ(slurp(path("f.202311142213.txt")), "kept\n");
}

TEST_F(RotatingOutputTest, MaxAgeRemovesFilesWhoseIntervalEndedLongerAgo) {
  // 5-minute files; now 22:13:20; max_age 10 minutes: an interval ending at or
  // before 22:03:20 is too old. 21:55-22:00 and 21:50-21:55 go; 22:00-22:05
  // ends after 22:03:20 and stays.
  for (const char* name : {"f.202311142150.txt", "f.202311142155.txt", "f.202311142200.txt", "f.202311142205.txt"})
    put(path(name), "x\n");
  RotatingOutput out(path("f.txt"), {5 * kMin, 0, 10 * kMin});
  EXPECT_TRUE(out.advanceTo(kT0));
  EXPECT_EQ(listing(), (std::set<std::string>{"f.202311142200.txt", "f.202311142205.txt", "f.202311142210.txt"}));
}

TEST_F(RotatingOutputTest, WithoutRotationOpensThePathAtOnce) {
  RotatingOutput out(path("plain.txt"), {});
  ASSERT_NE(out.file(), nullptr);
  EXPECT_FALSE(out.advanceTo(kT0));
  write(out.file(), "x\n");
  EXPECT_EQ(listing(), (std::set<std::string>{"plain.txt"}));
}

}  // namespace
}  // namespace flowfold

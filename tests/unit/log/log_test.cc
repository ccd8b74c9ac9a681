// Log lines as the journal reads them: a priority prefix ("<3>" error ...)
// when stderr is the journal's stream ($JOURNAL_STREAM names its device and
// inode), plain lines otherwise. stderr is pointed at a file here, and the
// file's own device and inode play the journal's.

#include "flowfold/log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace flowfold {
namespace {

// Runs `body` with stderr going to a fresh file; returns what was written.
template <class Body>
std::string stderrOf(bool name_it_the_journal, Body body) {
  char path[] = "/tmp/flowfold-log-XXXXXX";
  const int fd = ::mkstemp(path);
  struct stat st {};
  ::fstat(fd, &st);
  const std::string stream = name_it_the_journal
                                 ? std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)
                                 : std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  ::setenv("JOURNAL_STREAM", stream.c_str(), 1);
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(fd, STDERR_FILENO);
  detectJournalStream();
  body();
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(fd);
  ::unsetenv("JOURNAL_STREAM");
  detectJournalStream();
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  ::unlink(path);
  return text.str();
}

void logOneOfEach() {
  setLogLevel(LogLevel::kDebug);
  logError("e %d", 1);
  logWarn("w");
  logInfo("i");
  logDebug("d");
  setLogLevel(LogLevel::kInfo);
}

TEST(Log, OnTheJournalsStreamEachLineCarriesItsPriority) {
  EXPECT_EQ(stderrOf(true, logOneOfEach),
            "<3>flowfold: error: e 1\n<4>flowfold: warning: w\n<6>flowfold: i\n<7>flowfold: debug: d\n");
}

TEST(Log, OnAnyOtherStderrLinesArePlain) {
  EXPECT_EQ(stderrOf(false, logOneOfEach), "flowfold: error: e 1\nflowfold: warning: w\nflowfold: i\nflowfold: debug: d\n");
}

}  // namespace
}  // namespace flowfold

#pragma once
// Command line: softflowd's letters where they overlap, long options for the
// rest, and a trailing BPF filter as with tcpdump.

#include <string>
#include <vector>

#include "flowfold/probe/config.h"

namespace flowfold {

struct CommandLine {
  std::string config_file;  // -c
  bool check_config = false;
  bool show_help = false;
  bool show_version = false;
};

/// Usage text for --help.
std::string usageText();

/// Parses argv into a Config: loads -c FILE first, then applies the
/// command-line settings over it. Throws ConfigError on bad usage.
Config parseCommandLine(int argc, char** argv, CommandLine& cl);

}  // namespace flowfold

#pragma once
// `flowfold extract`: the packets of a time range and a filter, out of the
// packet recorder's ring, into a pcap file (or standard output). See
// README "Packet recording" and extract.cc.

namespace flowfold {

/// argv[0] is "extract"; returns the exit status (documented in --help).
int runExtract(int argc, char** argv);

}  // namespace flowfold

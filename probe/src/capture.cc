#include "flowfold/probe/capture.h"

#include <pcap/pcap.h>
#include <sys/stat.h>

#include <cstdio>

#include "flowfold/probe/pipeline.h"
#include "flowfold/probe/sharded_pipeline.h"

namespace flowfold {

struct PcapFileSource::Impl {
  pcap_t* handle = nullptr;
};

PcapFileSource::PcapFileSource(const std::string& path, const std::string& bpf_filter) : impl_(new Impl) {
  char err[PCAP_ERRBUF_SIZE] = {};
  impl_->handle = pcap_open_offline(path.c_str(), err);
  if (!impl_->handle) {
    throw InputError("cannot read capture '" + path + "': " + err +
                     " (flowfold reads pcap and pcapng files, '-' for standard input)");
  }
  struct stat st;
  if (path != "-" && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) file_size_ = static_cast<uint64_t>(st.st_size);
  if (!bpf_filter.empty()) {
    bpf_program program;
    if (pcap_compile(impl_->handle, &program, bpf_filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
      const std::string msg = pcap_geterr(impl_->handle);
      pcap_close(impl_->handle);
      impl_->handle = nullptr;
      throw InputError("bad capture filter '" + bpf_filter + "': " + msg);
    }
    const int rc = pcap_setfilter(impl_->handle, &program);
    pcap_freecode(&program);
    if (rc != 0) throw InputError(std::string("cannot apply capture filter: ") + pcap_geterr(impl_->handle));
  }
}

PcapFileSource::~PcapFileSource() {
  if (impl_->handle) pcap_close(impl_->handle);
}

uint64_t PcapFileSource::bytesRead() const {
  FILE* f = pcap_file(impl_->handle);
  const long pos = f ? std::ftell(f) : -1;
  return pos > 0 ? static_cast<uint64_t>(pos) : 0;
}

int PcapFileSource::datalink() const { return pcap_datalink(impl_->handle); }

std::string PcapFileSource::datalinkName() const {
  const int dlt = datalink();
  const char* name = pcap_datalink_val_to_name(dlt);
  return name ? name : "DLT " + std::to_string(dlt);
}

namespace {
template <class Sink>
void onPacket(u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
  auto* sink = reinterpret_cast<Sink*>(user);
  // Timestamps before 1970 cannot be expressed in flowStartMilliseconds.
  const uint64_t secs = h->ts.tv_sec > 0 ? static_cast<uint64_t>(h->ts.tv_sec) : 0;
  const uint64_t ts_ms = secs * 1000 + static_cast<uint64_t>(h->ts.tv_usec) / 1000;
  sink->onPacket(bytes, h->caplen, h->len, ts_ms);
}
}  // namespace

template <class Sink>
PcapFileSource::Result PcapFileSource::dispatchTo(Sink& sink, int max_packets) {
  const int n = pcap_dispatch(impl_->handle, max_packets, onPacket<Sink>, reinterpret_cast<u_char*>(&sink));
  sink.drain();
  if (n > 0) {
    packets_ += static_cast<uint64_t>(n);
    return Result::kMore;
  }
  if (n == 0) return Result::kEnd;
  if (n == PCAP_ERROR_BREAK) return Result::kEnd;
  error_ = pcap_geterr(impl_->handle);
  return Result::kTruncated;
}

PcapFileSource::Result PcapFileSource::dispatch(Pipeline& pipeline, int max_packets) {
  return dispatchTo(pipeline, max_packets);
}

PcapFileSource::Result PcapFileSource::dispatch(ShardedPipeline& pipeline, int max_packets) {
  return dispatchTo(pipeline, max_packets);
}

}  // namespace flowfold

#include "model/wire/pcap_writer.h"

#include <pcap/pcap.h>

#include <utility>

namespace rn::wire {

PcapWriter::PcapWriter(PcapWriter&& o) noexcept
    : pcap_(std::exchange(o.pcap_, nullptr)),
      dumper_(std::exchange(o.dumper_, nullptr)),
      snaplen_(o.snaplen_),
      packets_(o.packets_) {}

PcapWriter& PcapWriter::operator=(PcapWriter&& o) noexcept {
  if (this != &o) {
    close();
    pcap_ = std::exchange(o.pcap_, nullptr);
    dumper_ = std::exchange(o.dumper_, nullptr);
    snaplen_ = o.snaplen_;
    packets_ = o.packets_;
  }
  return *this;
}

bool PcapWriter::open(const std::string& path, uint32_t snaplen, std::string* err) {
  close();
  if (snaplen == 0) snaplen = 65535;
  pcap_ = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, static_cast<int>(snaplen),
                                               PCAP_TSTAMP_PRECISION_NANO);
  if (pcap_ == nullptr) {
    if (err) *err = "pcap_open_dead_with_tstamp_precision failed";
    return false;
  }
  dumper_ = pcap_dump_open(pcap_, path.c_str());
  if (dumper_ == nullptr) {
    if (err) *err = std::string("pcap_dump_open(") + path + "): " + pcap_geterr(pcap_);
    pcap_close(pcap_);
    pcap_ = nullptr;
    return false;
  }
  snaplen_ = snaplen;
  packets_ = 0;
  return true;
}

void PcapWriter::write(uint64_t time_ps, const uint8_t* frame, size_t len) {
  if (dumper_ == nullptr) return;
  const uint64_t ns = time_ps / 1000;
  pcap_pkthdr h{};
  h.ts.tv_sec = static_cast<time_t>(ns / 1000000000ull);
  // With PCAP_TSTAMP_PRECISION_NANO the "usec" field carries nanoseconds.
  h.ts.tv_usec = static_cast<suseconds_t>(ns % 1000000000ull);
  h.len = static_cast<bpf_u_int32>(len);
  h.caplen = static_cast<bpf_u_int32>(len < snaplen_ ? len : snaplen_);
  pcap_dump(reinterpret_cast<u_char*>(dumper_), &h, frame);
  ++packets_;
}

void PcapWriter::flush() {
  if (dumper_ != nullptr) pcap_dump_flush(dumper_);
}

void PcapWriter::close() {
  if (dumper_ != nullptr) {
    pcap_dump_close(dumper_);
    dumper_ = nullptr;
  }
  if (pcap_ != nullptr) {
    pcap_close(pcap_);
    pcap_ = nullptr;
  }
}

}  // namespace rn::wire

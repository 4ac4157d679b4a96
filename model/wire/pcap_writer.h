// Writes Ethernet frames to a pcap file (nanosecond timestamps) with libpcap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

// libpcap types, kept out of this header.
struct pcap;
struct pcap_dumper;

namespace rn::wire {

class PcapWriter {
 public:
  PcapWriter() = default;
  ~PcapWriter() { close(); }
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;
  PcapWriter(PcapWriter&& o) noexcept;
  PcapWriter& operator=(PcapWriter&& o) noexcept;

  // Opens (truncates) path as a DLT_EN10MB nanosecond pcap. Frames longer than snaplen are
  // cut to snaplen bytes (their original length is recorded). Returns false and sets *err
  // (if err is not null) on failure. Closes a file that is already open first.
  bool open(const std::string& path, uint32_t snaplen, std::string* err);
  // Appends one frame (no FCS) stamped with the simulation time in picoseconds (recorded with
  // nanosecond resolution, truncated). No allocation. Ignored if not open.
  void write(uint64_t time_ps, const uint8_t* frame, size_t len);
  void flush();
  void close();
  bool is_open() const { return dumper_ != nullptr; }
  uint64_t packets() const { return packets_; }

 private:
  pcap* pcap_ = nullptr;
  pcap_dumper* dumper_ = nullptr;
  uint32_t snaplen_ = 0;
  uint64_t packets_ = 0;
};

}  // namespace rn::wire

// Writes Ethernet frames to a pcap file (nanosecond timestamps) with libpcap.
//
// The file is written by a thread of its own: write() only copies the frame into a large
// buffer, and full buffers go to the writer thread, which hands each frame to libpcap. The
// simulation never waits for the disk (a run that captures 20 MB of frames spent a third of its
// time in write system calls), unless it gets more than 32 MiB ahead of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace rn::wire {

class PcapWriter {
 public:
  PcapWriter();
  ~PcapWriter();
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;
  PcapWriter(PcapWriter&& o) noexcept;
  PcapWriter& operator=(PcapWriter&& o) noexcept;

  // Opens (truncates) path as a DLT_EN10MB nanosecond pcap. Frames longer than snaplen are
  // cut to snaplen bytes (their original length is recorded). Returns false and sets *err
  // (if err is not null) on failure. Closes a file that is already open first.
  bool open(const std::string& path, uint32_t snaplen, std::string* err);
  // Appends one frame (no FCS) stamped with the simulation time in picoseconds (recorded with
  // nanosecond resolution, truncated). No allocation once warm. Ignored if not open.
  void write(uint64_t time_ps, const uint8_t* frame, size_t len);
  // Returns once every frame written so far is in the file.
  void flush();
  // Writes what is left and closes the file. Returns false and sets *err (if err is not null) if
  // a write failed (disk full, I/O error): the file is then incomplete. Nothing open: true.
  bool close(std::string* err = nullptr);
  bool is_open() const { return impl_ != nullptr; }
  uint64_t packets() const { return packets_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint64_t packets_ = 0;
};

}  // namespace rn::wire
